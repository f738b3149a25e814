/**
 * The data layer: CSV and Parquet IO, the columnar Dataset, schemas with PII detection, fitted
 * preprocessing, and the registry of public datasets. See docs/data.md.
 */
export {
  type CsvDatasetOptions,
  type CsvReader,
  type CsvReadOptions,
  type CsvRow,
  type CsvWriteOptions,
  CsvWriter,
  isSafeNumber,
  openCsv,
  readCsvDataset,
  readCsvHeader,
  writeCsv,
} from './csv.js';
export {
  type CellValue,
  type Column,
  type ColumnType,
  columnNotFound,
  Dataset,
  formatTimestamp,
  type NumberColumn,
  parseNumber,
  parseTimestamp,
  type Row,
  type StringColumn,
  type TimestampColumn,
  type ToMatrixOptions,
} from './dataset.js';
export { type InferOptions, inferSchema, inferSchemaFromDataset, niceCeil, niceFloor } from './infer.js';
export { type DataFormat, formatOf, readDataset, writeDataset } from './io.js';
export { type ParquetReadOptions, readParquet, writeParquet } from './parquet.js';
export {
  detectColumn,
  detectPii,
  isBirthDate,
  isCardNumber,
  isEmail,
  isIban,
  isIpAddress,
  isPersonName,
  isPhone,
  isSsn,
  isStreetAddress,
  luhnValid,
  normalizeColumnName,
  PII_DETECTORS,
  type PiiDetector,
  type PiiFinding,
  type PiiOptions,
  sampleValues,
} from './pii.js';
export {
  checkAgainstSchema,
  coerceToSchema,
  columnTypeOf,
  type Detection,
  FIELD_TYPES,
  type FieldType,
  isPersonal,
  loadSchema,
  PII_KINDS,
  type PiiKind,
  parseSchema,
  type Schema,
  type SchemaCheckOptions,
  type SchemaField,
  type SchemaIssue,
  SENSITIVITIES,
  type Sensitivity,
  saveSchema,
  schemaToYaml,
  validateAgainstSchema,
  validateSchema,
} from './schema.js';
