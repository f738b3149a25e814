import type { Command } from 'commander';
import { BulwarkError, readInputFile } from '../core/index.js';
import { DEFAULT_MAX_MEMORY_BYTES, type OnnxMemoryOptions, PACKAGE_MAGIC } from '../model/index.js';
import { bytesOption } from './options.js';

/**
 * The bytes of an ONNX model file for the commands that run a model in the clear (predict, evaluate,
 * data inspect). A protected package (.bwm) is refused by name: its model is encrypted, and without
 * this check the ONNX decoder reported "not an ONNX model: invalid wire type 4 at offset 3".
 */
export async function readOnnxModelFile(path: string): Promise<Uint8Array> {
  const bytes = await readInputFile(path, 'model file');
  if (bytes.length >= PACKAGE_MAGIC.length && PACKAGE_MAGIC.equals(bytes.subarray(0, PACKAGE_MAGIC.length)))
    throw new BulwarkError(
      'ERR_FORMAT_UNSUPPORTED',
      `${path} is a protected model package (.bwm), whose model is encrypted: give the ONNX model it was made from (a package is served by bulwark serve, checked by bulwark model verify)`,
      { details: { path } },
    );
  return bytes;
}

/** The parser of `--max-model-memory` and `BULWARK_MAX_MODEL_MEMORY`: 1 MiB to 1 TiB. */
const parseModelMemory = bytesOption(2 ** 20, 2 ** 40);

/**
 * `--max-model-memory <size>`, for `.option(...MODEL_MEMORY_OPTION)` on a command that opens or checks an
 * ONNX model: the most bytes the model's tensors may hold in one run of 4,096 rows (default
 * `$BULWARK_MAX_MODEL_MEMORY`, else 1 GiB, as the gateway's `models[].maxMemoryBytes`, and within the
 * same range: 1 MiB to 1 TiB). Validated when the command line is read, before any work, naming itself
 * (ERR_USAGE).
 */
export const MODEL_MEMORY_OPTION: [string, string, (v: string) => number] = [
  '--max-model-memory <size>',
  "most memory the model's tensors may hold in one run of 4096 rows, bounded from the graph before ONNX Runtime opens it (bytes, or as 512MiB, 4GiB; 1MiB to 1TiB; default $BULWARK_MAX_MODEL_MEMORY, else 1GiB); a model past it, or whose memory cannot be bounded, is refused (ERR_MODEL_UNSAFE)",
  parseModelMemory,
];

/**
 * The memory bound a command opens models under: `--max-model-memory`, else `$BULWARK_MAX_MODEL_MEMORY`
 * (one setting for a pipeline's every command), else 1 GiB; the source is named in a refusal so that it
 * says what to raise. A malformed variable is ERR_USAGE naming it, never the default silently.
 */
export function modelMemoryOf(cmd: Command): OnnxMemoryOptions {
  const v = cmd.opts<{ maxModelMemory?: number }>().maxModelMemory;
  if (v !== undefined) return { maxMemoryBytes: v, limitName: '--max-model-memory' };
  const env = process.env['BULWARK_MAX_MODEL_MEMORY'];
  if (env === undefined || env === '')
    return { maxMemoryBytes: DEFAULT_MAX_MEMORY_BYTES, limitName: '--max-model-memory' };
  try {
    return { maxMemoryBytes: parseModelMemory(env), limitName: 'BULWARK_MAX_MODEL_MEMORY' };
  } catch (e) {
    throw new BulwarkError('ERR_USAGE', `BULWARK_MAX_MODEL_MEMORY: ${(e as Error).message}`);
  }
}
