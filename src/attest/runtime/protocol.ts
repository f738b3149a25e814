/**
 * Messages between the parent and the software enclave worker on the IPC channel (structured-clone
 * serialization): start-up and attestations. Session frames use the record pipe below.
 */
export type WorkerRequest = { kind: 'attestation'; id: number; nonce: Uint8Array };

export interface WorkerInit {
  kind: 'init';
  moduleId: string;
  model: Uint8Array | null;
  threads: number;
  /** Further self-reported measurements declared by the parent (hex), e.g. the gateway's model digests. */
  measurements?: Record<string, string>;
  /** Attestation and session lifetimes and the session cap (AttestedSessionServerOptions). */
  session?: { attestationTtlSeconds?: number; sessionTtlSeconds?: number; maxSessions?: number };
  /** How long an opened request waits for its answer before the worker forgets it (ms). */
  pendingTtlMs?: number;
}

export type WorkerReply =
  | { kind: 'ready'; signerPublicKey: string; publicKey: Uint8Array; measurements: Record<string, string> }
  | { kind: 'fatal'; code: string; message: string }
  | { kind: 'result'; id: number; ok: true; bytes: Uint8Array }
  | { kind: 'result'; id: number; ok: false; code: string; message: string };

/**
 * The per-request channel: the IPC channel above carries start-up, attestations and control; every
 * session frame travels on a second pipe (the child's fd {@link RECORD_FD}) as length-prefixed binary
 * records, so a request costs no structured clone and no JSON, and the bytes are copied once into the
 * socket. A record is
 *   length (u32, of what follows) | kind (u8) | call id (u32) | body
 * with the bodies
 *   open   (parent → worker): the session frame              → opened | error
 *   seal   (parent → worker): handle (u32) | plaintext        → bytes  | error
 *   handle (parent → worker): the session frame              → bytes  | error   (the worker's own model)
 *   opened (worker → parent): handle (u32) | seq (u64) | session id (16) | plaintext
 *   bytes  (worker → parent): a sealed RESPONSE frame
 *   error  (worker → parent): UTF-8 JSON {"code", "message"}
 */
export const RECORD_FD = 4;
export const RecordKind = {
  open: 1,
  seal: 2,
  handle: 3,
  opened: 0x81,
  bytes: 0x82,
  error: 0x83,
} as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

/** Record header: length, kind, call id. */
export const RECORD_HEADER = 9;
/** A record over this size breaks the channel (a frame is bounded by the gateway's body limit). */
export const MAX_RECORD = 256 * 1024 * 1024;

/** One record in one buffer (a single write on the pipe). */
export function encodeRecord(kind: RecordKind, id: number, parts: readonly Uint8Array[]): Buffer {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = Buffer.allocUnsafe(RECORD_HEADER + n);
  out.writeUInt32BE(n + 5, 0);
  out[4] = kind;
  out.writeUInt32BE(id, 5);
  let o = RECORD_HEADER;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Reassembles records from a byte stream (pipe reads split and join records freely). The body handed
 * to `onRecord` is a view into the read buffer, valid until the callback returns unless kept.
 */
export class RecordReader {
  #rest: Buffer | null = null;
  readonly #onRecord: (kind: number, id: number, body: Buffer) => void;

  constructor(onRecord: (kind: number, id: number, body: Buffer) => void) {
    this.#onRecord = onRecord;
  }

  /** Feeds a chunk; throws when a record announces more than {@link MAX_RECORD} bytes. */
  push(chunk: Buffer): void {
    let b = this.#rest === null ? chunk : Buffer.concat([this.#rest, chunk]);
    this.#rest = null;
    while (b.length >= 4) {
      const n = b.readUInt32BE(0);
      if (n < 5 || n > MAX_RECORD) throw new Error(`record length ${n} out of range`);
      if (b.length < 4 + n) break;
      this.#onRecord(b[4] as number, b.readUInt32BE(5), b.subarray(RECORD_HEADER, 4 + n));
      b = b.subarray(4 + n);
    }
    if (b.length > 0) this.#rest = Buffer.from(b);
  }
}

/**
 * Reads the records arriving on `io` (either end of the record pipe): `onRecord` for each one;
 * `onCorrupt` once, when a record's length is out of range or `onRecord` throws on a malformed body.
 * A corrupt channel cannot be resynchronised, so nothing after it is read.
 */
export function readRecords(
  io: NodeJS.ReadableStream,
  onRecord: (kind: number, id: number, body: Buffer) => void,
  onCorrupt: (e: Error) => void,
): void {
  const reader = new RecordReader(onRecord);
  let broken = false;
  io.on('data', (chunk: Buffer) => {
    if (broken) return;
    try {
      reader.push(chunk);
    } catch (e) {
      broken = true;
      onCorrupt(e instanceof Error ? e : new Error(String(e)));
    }
  });
}
