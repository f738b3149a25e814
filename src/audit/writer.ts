import type { Checkpoint } from './checkpoint.js';
import type { AuditEventInput } from './events.js';

/** What a writer gets back once its event is durable. */
export interface AppendReceipt {
  id: string;
  index: number;
  /** Hex RFC 9162 leaf hash of the entry. */
  leafHash: string;
}

/**
 * What a long-running writer (the gateway) needs of an audit log: durable appends, flush, signed
 * checkpoints and the log's identity. {@link AuditLog} is one, writing on the calling thread;
 * {@link ThreadedAuditLog} is the other, writing on a worker thread of its own.
 */
export interface AuditWriter {
  readonly origin: string;
  /**
   * Resolves once the event is durably stored; rejects with ERR_AUDIT_EVENT_INVALID for an invalid
   * event and ERR_AUDIT_UNAVAILABLE when it cannot be written (a caller that must not act without a
   * record refuses).
   */
  append(event: AuditEventInput): Promise<AppendReceipt>;
  /** Resolves when every event appended before the call is committed (or has failed). */
  flush(): Promise<void>;
  /** Signs and stores a checkpoint of the current tree (needs the signer). */
  checkpoint(): Promise<Checkpoint>;
  /** The stored checkpoints, by size. */
  checkpoints(): Promise<Checkpoint[]>;
  /** The public key that signs the log's checkpoints now (`name+id+key`), if any. */
  publicKey(): Promise<string | undefined>;
  /**
   * Signs checkpoints with `signerKey` (`PRIVATE+KEY+...`) from now on, once the log's key history has
   * it in force (after `bulwark audit rotate-key`); ERR_AUDIT_KEY_INVALID otherwise, the key in use kept.
   */
  useSigner(signerKey: string): Promise<{ key: string; changed: boolean }>;
  close(): Promise<void>;
}
