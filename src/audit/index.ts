/**
 * Audit: a tamper-evident transparency log of data lineage and every prediction (RFC 9162 Merkle
 * tree, C2SP signed checkpoints with Ed25519, SQLite or PostgreSQL storage with group commit), and
 * the verifier functions a third party runs with only the log's public key. See docs/audit.md.
 */
export {
  type Checkpoint,
  checkpointText,
  parseCheckpointText,
  signCheckpoint,
  type TreeHead,
  verifyCheckpoint,
} from './checkpoint.js';
export {
  AUDIT_EVENT_TYPES,
  type AuditEntry,
  type AuditEventData,
  type AuditEventInput,
  type AuditEventType,
  canonicalJson,
  decodeEntry,
  describeEvent,
  digestSchema,
  EVENT_VERSION,
  eventDataSchemas,
  eventRefs,
  MAX_ENTRY_CHARS,
  oneLine,
  parseEventInput,
} from './events.js';
export { type KeyEpoch, keyName } from './keys.js';
export {
  type AppendReceipt,
  AuditLog,
  type AuditLogOptions,
  type AuditStoreSpec,
  type Lineage,
  type LineageNode,
  openAuditStore,
  type VerifyReport,
} from './log.js';
export {
  consistencyProof,
  EMPTY_ROOT,
  Frontier,
  HASH_SIZE,
  inclusionProof,
  leafHash,
  nodeHash,
  rangeHash,
  rootAt,
  rootFromInclusionProof,
  type SubtreeSource,
  verifyConsistency,
  verifyInclusion,
} from './merkle.js';
export {
  ed25519KeyId,
  generateSignerKey,
  type NoteSignature,
  type NoteSigner,
  type NoteVerifier,
  openNote,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  signNote,
} from './note.js';
export { PgAuditStore, type PgStoreOptions } from './pg-store.js';
export {
  RECORD_SIGNATURE_CONTEXT,
  recordSignatureProblem,
  requireRecordSignedBy,
  signTrainingRecord,
} from './record-signature.js';
export { SqliteAuditStore, type SqliteStoreOptions } from './sqlite-store.js';
export {
  type AuditStore,
  NODE_CACHE_LEVEL,
  type StoredCheckpoint,
  type StoredEntry,
  type TreeState,
} from './store.js';
export {
  ThreadedAuditLog,
  type ThreadedAuditLogOptions,
} from './threaded.js';
export {
  type ConsistencyBundle,
  type InclusionBundle,
  type VerifiedConsistency,
  type VerifiedInclusion,
  verifyCheckpointConsistency,
  verifyConsistencyBundle,
  verifyInclusionBundle,
} from './verify.js';
export type { AuditWriter } from './writer.js';
