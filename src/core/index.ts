export { clopperPearson } from './binomial.js';
export { formatPath, loadConfig, parseConfig, parseYaml, validateConfig } from './config.js';
export { fileDigest, sha256Digest } from './digest.js';
export { type ErrorCode, ExitCode, errorCodes } from './error-codes.js';
export { BulwarkError, type BulwarkErrorOptions, invalidArgument, isBulwarkError } from './errors.js';
export {
  type Figure,
  type FigureSummary,
  figureTableLines,
  fmtFigure,
  machineInfo,
  median,
  summarise,
} from './figures.js';
export {
  AtomicFileStream,
  type AtomicWriteOptions,
  exists,
  type FileLock,
  fsError,
  lockFile,
  type OutputFolderTarget,
  readInputFile,
  readJsonFile,
  removePendingTemps,
  requireFile,
  requireOutputFolder,
  requireOutputFolderSync,
  SECRET_FILE_EXPOSED_WARNING,
  warnIfWorldReadable,
  withFileRead,
  writeFileAtomic,
} from './fs.js';
export { CONNECTION_ERRNO, isConnectionFailure, redactUrl } from './postgres.js';
export { fmix32, makeRng, Rng, rngOf, SecureRng, type Seed, SeededRng } from './rng.js';
export { escapeChars, NOT_ONE_LINE_CHARS, UNPRINTABLE_CHARS } from './text.js';
export {
  requireFinite,
  requireFiniteRows,
  requireInteger,
  requireNonEmptyString,
  requireNumberIn,
  requireOneOf,
  requirePositive,
} from './validate.js';
export { bulwarkVersion, packageRoot } from './version.js';
