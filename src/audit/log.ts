/**
 * The audit log: a tamper-evident transparency log (RFC 9162 Merkle tree, C2SP signed checkpoints)
 * over a durable store, with group commit.
 *
 * Writers call {@link AuditLog.append}; the event is validated at once, queued, and written with the
 * other queued events in one transaction (one fsync / one commit per batch). The promise resolves
 * only after that commit is durable, and rejects (ERR_AUDIT_UNAVAILABLE) when the store cannot be
 * written: a caller that must not act without a record (the gateway) refuses the request.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { BulwarkError, requireInteger } from '../core/index.js';
import { type Checkpoint, checkpointText, signCheckpoint, type TreeHead } from './checkpoint.js';
import {
  type AuditEntry,
  type AuditEventData,
  type AuditEventInput,
  canonicalEventData,
  decodeEntry,
  entryBody,
  eventRefs,
  parseEventInput,
} from './events.js';
import {
  type KeyEpoch,
  keyHistory,
  keyName,
  keysAt,
  type VerifierEpoch,
  verifierEpochs,
  verifyCheckpointAt,
} from './keys.js';
import { consistencyProof, Frontier, inclusionProof, leafHash, rootAt, verifyConsistency } from './merkle.js';
import {
  type NoteSigner,
  type NoteVerifier,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  signaturesBy,
  signNote,
} from './note.js';
import { PgAuditStore, type PgStoreOptions } from './pg-store.js';
import { recordSignatureHolds, signTrainingRecord } from './record-signature.js';
import { SqliteAuditStore, type SqliteStoreOptions } from './sqlite-store.js';
import {
  type AuditStore,
  NODE_CACHE_LEVEL,
  type NodeRow,
  type RefRow,
  STORE_FORMAT,
  type StoredEntry,
} from './store.js';
import { StoreTree } from './tree.js';
import {
  type ConsistencyBundle,
  type InclusionBundle,
  verifyConsistencyBundle,
  verifyInclusionBundle,
} from './verify.js';
import type { AppendReceipt, AuditWriter } from './writer.js';

/** Where a log is kept. */
export type AuditStoreSpec =
  | ({ kind: 'sqlite' } & SqliteStoreOptions)
  | ({ kind: 'postgres' } & PgStoreOptions);

/** Opens the store a spec names. */
export async function openAuditStore(spec: AuditStoreSpec): Promise<AuditStore> {
  return spec.kind === 'sqlite' ? SqliteAuditStore.open(spec) : PgAuditStore.open(spec);
}

export interface AuditLogOptions {
  /** The store, or where to open one. */
  store: AuditStoreSpec | AuditStore;
  /**
   * The log's identity, the first line of its checkpoints (a schema-less URL such as
   * `bulwark.example/audit`). Required to create a log; checked against the stored one otherwise.
   */
  origin?: string;
  /** The checkpoint signing key; its name must be the origin. Needed only to write checkpoints. */
  signer?: NoteSigner;
  /** The most events written in one transaction (default 4,096). */
  maxBatch?: number;
}

export type { AppendReceipt } from './writer.js';

/** The result of a full verification. */
export interface VerifyReport {
  origin: string;
  size: number;
  /** Base64 root hash recomputed from the entries. */
  root: string;
  entries: number;
  /** Stored checkpoints checked. */
  checkpoints: number;
  /** Checkpoints the caller held and gave (`checkpoints` option, `--checkpoint`), checked against the log. */
  heldCheckpoints: number;
  /**
   * The largest tree size a verified signature covers (stored or held checkpoints; 0 when none).
   * Entries at this index and beyond are bound only by the store's own hashes: whoever can write the
   * database can still change them without `verify` noticing, until a checkpoint covers them.
   */
  signedSize: number;
  /** Cached subtree hashes compared with their recomputation. */
  nodesChecked: number;
  /** Where the public key came from: the caller (trusted) or the log's own metadata. */
  keySource: 'argument' | 'log';
  /** The log's checkpoint keys checked (more than one after a key rotation, `AuditLog.rotateKey`). */
  keys: number;
  /**
   * Indexes of `log.key-rotated` entries that no hand-over checkpoint completes (a rotation that
   * stopped half-way; run it again): the key they name signs nothing of this log.
   */
  unfinishedRotations: number[];
  /**
   * `model.trained` records signed by their writer (`train --record-key`), by key, each signature
   * checked under the key it names; and those without a signature. Whether a key is one to trust is
   * the reader's call (`model protect --trainer-key`).
   */
  trainingRecords: { signed: { key: string; records: number }[]; unsigned: number };
  seconds: number;
}

/** A node of a lineage graph: an entry and how it was reached. */
export interface LineageNode {
  entry: AuditEntry;
  depth: number;
  /** The reference through which the child used what this entry produced (null for the start). */
  via: string | null;
  /** The index of the entry that used it (null for the start). */
  child: number | null;
}

export interface Lineage {
  nodes: LineageNode[];
  /** References used by some node that no earlier entry produces. */
  unresolved: { ref: string; usedBy: number }[];
}

interface Pending {
  type: string;
  id: string;
  time: string;
  dataJson: string;
  produces: string[];
  resolve: (r: AppendReceipt) => void;
  reject: (e: unknown) => void;
}

const ORIGIN_RE = /^[^\s+]+$/u;

/** A tamper-evident audit log. */
export class AuditLog implements AuditWriter {
  private queue: Pending[] = [];
  private committing: Promise<void> | null = null;
  private enqueued = 0;
  private settled = 0;
  private flushWaiters: { target: number; resolve: () => void }[] = [];
  private closed = false;

  private constructor(
    readonly store: AuditStore,
    readonly origin: string,
    private signer: NoteSigner | undefined,
    private readonly maxBatch: number,
  ) {}

  /** The writer's own key that signs its `model.trained` records ({@link signRecordsWith}). */
  #recordSigner: NoteSigner | undefined;

  /**
   * Opens a log, creating it when the store is empty. Throws ERR_AUDIT_UNAVAILABLE when the store
   * cannot be reached, ERR_AUDIT_ORIGIN_MISMATCH / ERR_AUDIT_KEY_INVALID when the origin or signer do
   * not belong to this log.
   *
   * @example
   * ```ts
   * const { signer } = generateSignerKey('bulwark.example/audit');
   * const log = await AuditLog.open({ store: { kind: 'sqlite', path: 'audit.db' }, origin: signer.name, signer });
   * await log.append({ type: 'key.created', data: { keyId: 'k1', algorithm: 'AES-256-GCM', provider: 'local', purpose: 'data' } });
   * const cp = await log.checkpoint();
   * ```
   */
  static async open(options: AuditLogOptions): Promise<AuditLog> {
    const maxBatch = requireInteger('maxBatch', options.maxBatch ?? 4096, 1, 1_000_000);
    if (options.origin !== undefined && !ORIGIN_RE.test(options.origin))
      throw new BulwarkError(
        'ERR_INVALID_ARGUMENT',
        `origin: expected a non-empty name with no spaces or '+', got ${JSON.stringify(options.origin)}`,
        {
          details: { parameter: 'origin' },
        },
      );
    const store = 'appendBatch' in options.store ? options.store : await openAuditStore(options.store);
    try {
      const format = await store.initMeta('format', STORE_FORMAT);
      if (format !== STORE_FORMAT)
        throw new BulwarkError(
          'ERR_AUDIT_STORE_INVALID',
          `${store.location}: format ${format}, expected ${STORE_FORMAT}`,
        );
      const wanted = options.origin ?? options.signer?.name;
      const origin =
        wanted === undefined ? await store.getMeta('origin') : await store.initMeta('origin', wanted);
      if (origin === undefined)
        throw new BulwarkError(
          'ERR_AUDIT_STORE_INVALID',
          `${store.location}: no audit log here (no origin recorded)`,
        );
      if (wanted !== undefined && origin !== wanted)
        throw new BulwarkError(
          'ERR_AUDIT_ORIGIN_MISMATCH',
          `${store.location} holds log ${JSON.stringify(origin)}, not ${JSON.stringify(wanted)}`,
          {
            details: { origin },
          },
        );
      if (options.signer) await requireKeyInForce(store, origin, options.signer, true);
      return new AuditLog(store, origin, options.signer, maxBatch);
    } catch (e) {
      await store.close().catch(() => {});
      throw e;
    }
  }

  /**
   * Signs this log's checkpoints with `signerKey` (`PRIVATE+KEY+...` text) from now on: the key in
   * force after a rotation that another process ran (`bulwark audit rotate-key` while a gateway
   * writes), so the writer goes on without a restart. Refused (ERR_AUDIT_KEY_INVALID, the old signer
   * kept) unless it is the key the log's history has in force; `changed` is false when it is already
   * the one in use.
   */
  async useSigner(signerKey: string): Promise<{ key: string; changed: boolean }> {
    const next = parseSignerKey(signerKey);
    await requireKeyInForce(this.store, this.origin, next, false);
    const changed = this.signer?.verifier.vkey !== next.verifier.vkey;
    this.signer = next;
    return { key: next.verifier.vkey, changed };
  }

  /** The public key that signs the log's checkpoints now (`name+id+key`), if any. */
  async publicKey(): Promise<string | undefined> {
    return (await keyHistory(this.store)).at(-1)?.vkey;
  }

  /**
   * Signs every `model.trained` record appended from now on with `signer`, the writer's own key
   * (record-signature.ts: `bulwark train --record-key`), so that a record whoever can append wrote
   * does not pass for this writer's. A record that already carries a signature is kept as it is.
   */
  signRecordsWith(signer: NoteSigner): void {
    this.#recordSigner = signer;
  }

  /** The log's keys in order, each with the tree size from which it signs (see keys.ts). */
  keys(): Promise<KeyEpoch[]> {
    return keyHistory(this.store);
  }

  /**
   * Appends an event; resolves once it is durably stored (group commit). Throws ERR_AUDIT_EVENT_INVALID
   * at once for an invalid event; rejects with ERR_AUDIT_UNAVAILABLE when the store cannot be written.
   */
  append(event: AuditEventInput): Promise<AppendReceipt> {
    // A rotation entry records a key hand-over only together with the checkpoint both keys sign:
    // written by rotateKey alone, never as an event anyone who can append may claim.
    if ((event as { type?: unknown } | null)?.type === 'log.key-rotated')
      return Promise.reject(
        new BulwarkError(
          'ERR_AUDIT_EVENT_INVALID',
          'audit event log.key-rotated: written only by a key rotation (bulwark audit rotate-key)',
          { details: { type: 'log.key-rotated' } },
        ),
      );
    return this.#append(event);
  }

  #append(event: AuditEventInput): Promise<AppendReceipt> {
    if (this.closed) return Promise.reject(new BulwarkError('ERR_AUDIT_CLOSED', 'the audit log is closed'));
    let parsed: AuditEventInput;
    let dataJson: string;
    try {
      parsed = parseEventInput(event);
      const by = this.#recordSigner;
      if (by && parsed.type === 'model.trained' && parsed.data.recordedBy === undefined)
        parsed = { type: parsed.type, data: signTrainingRecord(parsed.data, by) };
      dataJson = canonicalEventData(parsed);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<AppendReceipt>((resolve, reject) => {
      this.queue.push({
        type: parsed.type,
        id: eventId(),
        time: new Date().toISOString(),
        dataJson,
        produces: eventRefs(parsed).produces,
        resolve,
        reject,
      });
      this.enqueued++;
      if (!this.committing) this.committing = this.commitLoop();
    });
  }

  /**
   * Resolves when every event appended before the call is committed (or has failed); events appended
   * afterwards are not waited for, so a busy log cannot starve a checkpoint.
   */
  flush(): Promise<void> {
    const target = this.enqueued;
    if (this.settled >= target) return Promise.resolve();
    return new Promise((resolve) => this.flushWaiters.push({ target, resolve }));
  }

  private settle(count: number): void {
    this.settled += count;
    const ready = this.flushWaiters.filter((w) => w.target <= this.settled);
    this.flushWaiters = this.flushWaiters.filter((w) => w.target > this.settled);
    for (const w of ready) w.resolve();
  }

  private async commitLoop(): Promise<void> {
    // Yield once so that appends made in the same turn join the first batch.
    await nextTurn();
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      try {
        const receipts = await this.store.appendBatch((state) => {
          let frontier: Frontier;
          try {
            frontier = Frontier.decode(state.size, state.frontier);
          } catch {
            throw new BulwarkError(
              'ERR_AUDIT_STORE_INVALID',
              `${this.store.location}: the stored tree frontier is damaged`,
            );
          }
          const entries: StoredEntry[] = [];
          const refs: RefRow[] = [];
          const nodes: NodeRow[] = [];
          const out: AppendReceipt[] = [];
          const onNode = (n: { level: number; index: number; hash: Buffer }) => {
            if (n.level >= NODE_CACHE_LEVEL) nodes.push(n);
          };
          for (const p of batch) {
            const index = frontier.size;
            const body = entryBody(p.dataJson, p.id, index, p.time, p.type);
            const leaf = leafHash(body);
            frontier.push(leaf, onNode);
            entries.push({ index, id: p.id, body, leaf });
            for (const r of p.produces) refs.push({ ref: r, role: 0, index });
            out.push({ id: p.id, index, leafHash: leaf.toString('hex') });
          }
          return {
            entries,
            refs,
            nodes,
            state: { size: frontier.size, root: frontier.root(), frontier: frontier.encode() },
            result: out,
          };
        });
        for (const [i, p] of batch.entries()) p.resolve(receipts[i] as AppendReceipt);
      } catch (e) {
        for (const p of batch) p.reject(e);
      }
      this.settle(batch.length);
      // Let writers enqueue while the next batch forms.
      if (this.queue.length > 0) await nextTurn();
    }
    this.committing = null;
  }

  /** The current tree size and root. */
  async head(): Promise<{ size: number; root: Buffer }> {
    const s = await this.store.state();
    return { size: s.size, root: s.root };
  }

  /**
   * Signs and stores a checkpoint of the current tree. The root is recomputed from the cached
   * subtrees first, so a damaged state row can never be signed. Needs the signer.
   */
  async checkpoint(): Promise<Checkpoint> {
    if (!this.signer)
      throw new BulwarkError('ERR_AUDIT_KEY_INVALID', 'writing a checkpoint needs the log signing key');
    // Another process may have rotated the key since this log was opened (a gateway that kept the old
    // key): a checkpoint it signed now would fail every verification (useSigner takes the new key).
    await requireKeyInForce(this.store, this.origin, this.signer, false);
    const cp = signCheckpoint(await this.#headToSign(), this.signer);
    await this.#storeCheckpoint(cp);
    return cp;
  }

  /**
   * The tree head a checkpoint signs: after the queued appends commit, with its root recomputed from
   * the cached subtrees, so that a damaged stored head is never signed.
   */
  async #headToSign(): Promise<TreeHead> {
    await this.flush();
    const s = await this.store.state();
    const root = await rootAt(new StoreTree(this.store, s.size), s.size);
    if (!root.equals(s.root))
      throw new BulwarkError(
        'ERR_AUDIT_STORE_INVALID',
        `${this.store.location}: stored root does not match the tree`,
      );
    return { origin: this.origin, size: s.size, root };
  }

  #storeCheckpoint(cp: Checkpoint): Promise<void> {
    return this.store.addCheckpoint({
      size: cp.size,
      root: cp.root,
      note: cp.note,
      createdAt: new Date().toISOString(),
    });
  }

  /**
   * Hands the log over from its current signing key to `next` (same name: the log's origin), for a
   * cryptoperiod's end or a suspected leak: appends a `log.key-rotated` entry naming both keys, signs
   * a checkpoint of the tree that holds it with BOTH keys (the hand-over), stores it, and records
   * `next` as the key in force from that size (docs/audit.md, "Rotating the log's key"). From then on
   * this log signs with `next`, and opening the store with the old key is ERR_AUDIT_KEY_INVALID.
   *
   * Other writers that still hold the old key sign nothing after the hand-over (each checkpoint checks
   * the key in force: ERR_AUDIT_KEY_INVALID) until they are given the new one ({@link useSigner}; the
   * gateway on SIGHUP). One that signs the checkpoint of the hand-over's size during the rotation
   * stops it (ERR_AUDIT_INCONSISTENT). Safe to run again after a crash: a rotation entry without its
   * hand-over is reported by `verify` (`unfinishedRotations`) and a second run completes the rotation
   * with an entry and a hand-over of its own.
   */
  async rotateKey(next: NoteSigner): Promise<{ handover: Checkpoint; previousKey: string; newKey: string }> {
    const current = this.signer;
    if (!current)
      throw new BulwarkError('ERR_AUDIT_KEY_INVALID', 'rotating the key needs the current signing key');
    if (next.name !== this.origin)
      throw new BulwarkError(
        'ERR_AUDIT_KEY_INVALID',
        `the new key is named ${JSON.stringify(next.name)}; this log's keys must be named ${JSON.stringify(this.origin)}`,
      );
    await requireKeyInForce(this.store, this.origin, current, false);
    const previousKey = current.verifier.vkey;
    const newKey = next.verifier.vkey;
    const history = await keyHistory(this.store);
    if (history.some((k) => k.vkey === newKey))
      throw new BulwarkError(
        'ERR_AUDIT_KEY_INVALID',
        newKey === previousKey
          ? 'the new key is the key in force: make a new one with "bulwark audit keygen"'
          : `the new key ${keyName(newKey)} signed this log before: a retired key is never used again`,
      );
    await this.#append({ type: 'log.key-rotated', data: { previousKey, newKey } });
    const head = await this.#headToSign();
    const handover: Checkpoint = { ...head, note: signNote(checkpointText(head), [current, next]) };
    await this.#storeCheckpoint(handover);
    // A checkpoint of that size signed meanwhile by another writer (the store keeps the first): the
    // rotation entry stays unfinished and the key is not handed over.
    const stored = (await this.store.checkpoints()).find((c) => c.size === head.size);
    if (stored?.note !== handover.note)
      throw new BulwarkError(
        'ERR_AUDIT_INCONSISTENT',
        `another writer signed the checkpoint of tree size ${head.size} during the rotation: stop the writers that use the old key and run the rotation again`,
        { details: { size: head.size } },
      );
    // requireKeyInForce above: the history holds the current key as its last.
    const keys = [...history, { vkey: newKey, since: head.size }];
    await this.store.setMeta({ keys: JSON.stringify(keys), vkey: newKey });
    this.signer = next;
    return { handover, previousKey, newKey };
  }

  /** The stored checkpoints, by size (signatures not checked here: see {@link AuditLog.verify}). */
  async checkpoints(): Promise<Checkpoint[]> {
    return (await this.store.checkpoints()).map((c) => ({
      origin: this.origin,
      size: c.size,
      root: c.root,
      note: c.note,
    }));
  }

  /** A stored entry by event id, decoded. Throws ERR_AUDIT_EVENT_NOT_FOUND. */
  async get(eventId: string): Promise<AuditEntry> {
    return (await this.#logged(eventId)).entry;
  }

  /**
   * The row of an event and its decoded entry (`get` and `prove`): ERR_AUDIT_EVENT_NOT_FOUND, or
   * ERR_AUDIT_ENTRY_CORRUPT / ERR_AUDIT_STORE_INVALID when its bytes, id column or place in the tree
   * (see {@link #inTree}) are wrong.
   */
  async #logged(eventId: string): Promise<{ row: StoredEntry; entry: AuditEntry }> {
    const row = await this.store.entryById(eventId);
    if (!row) throw notFound(eventId);
    const entry = decodeOrThrow(row);
    if (entry.id !== eventId) throw corrupt(row.index, 'its indexed id column does not match its bytes');
    await this.#inTree(row);
    return { row, entry };
  }

  /** The last `count` entries, oldest first. */
  async tail(count: number): Promise<AuditEntry[]> {
    requireInteger('count', count, 1, 1_000_000);
    // Read below the tree head only: a row stored beyond it is not in the tree (see #inTree).
    const { size } = await this.store.state();
    return (await this.store.entries(Math.max(0, size - count), size)).map(decodeOrThrow);
  }

  /**
   * Throws unless the entry is inside the tree: a row at or beyond the tree size was not written by
   * an append (rows and size commit together), and is in no tree a checkpoint can sign. The state is
   * read after the row, and the size only grows, so a concurrent append cannot make this fail.
   */
  async #inTree(row: StoredEntry): Promise<void> {
    const { size } = await this.store.state();
    if (row.index >= size)
      throw new BulwarkError(
        'ERR_AUDIT_STORE_INVALID',
        `${this.store.location}: entry #${row.index} is stored beyond the tree head (size ${size}): it is not part of the log`,
        { details: { index: row.index, size } },
      );
  }

  /**
   * An inclusion proof of an event against a signed checkpoint: the latest one by default (or the one
   * of `treeSize`). When no stored checkpoint covers the event and the log has its signer, a new
   * checkpoint is written; otherwise ERR_AUDIT_CHECKPOINT_MISSING.
   */
  async prove(eventId: string, treeSize?: number): Promise<InclusionBundle> {
    const { row } = await this.#logged(eventId);
    const cps = await this.store.checkpoints();
    let cp = treeSize === undefined ? cps[cps.length - 1] : cps.find((c) => c.size === treeSize);
    if (treeSize !== undefined && !cp)
      throw new BulwarkError('ERR_AUDIT_CHECKPOINT_MISSING', `no checkpoint of tree size ${treeSize}`);
    if (!cp || cp.size <= row.index) {
      if (treeSize !== undefined || !this.signer)
        throw new BulwarkError(
          'ERR_AUDIT_CHECKPOINT_MISSING',
          `event ${eventId} (#${row.index}) is not covered by a checkpoint yet: write one with "bulwark audit checkpoint"`,
        );
      const fresh = await this.checkpoint();
      cp = { size: fresh.size, root: fresh.root, note: fresh.note, createdAt: '' };
    }
    const proof = await inclusionProof(new StoreTree(this.store, cp.size), row.index, cp.size);
    return {
      format: 'bulwark-audit-inclusion/1',
      index: row.index,
      treeSize: cp.size,
      entry: row.body,
      proof: proof.map((h) => h.toString('base64')),
      checkpoint: cp.note,
    };
  }

  /** The RFC 9162 consistency proof from tree size `first` to `second` (base64 hashes). */
  async consistency(first: number, second: number): Promise<string[]> {
    const s = await this.store.state();
    requireInteger('second', second, 0, s.size);
    requireInteger('first', first, 0, second);
    const proof = await consistencyProof(new StoreTree(this.store, second), first, second);
    return proof.map((h) => h.toString('base64'));
  }

  /**
   * A consistency bundle for an auditor (RFC 9162 §2.1.4): from `oldNote`, a checkpoint of this log
   * they kept, to a stored checkpoint: the one of `treeSize`, or the latest. Only with the signer and
   * no `treeSize` is a checkpoint signed here, and only when the tree has grown beyond the latest stored
   * one (`signed` says so: a new checkpoint signs whatever the store holds now); otherwise ERR_AUDIT_CHECKPOINT_MISSING when no stored checkpoint reaches
   * the old size.
   *
   * The old note must be signed by the key recorded in the log (ERR_AUDIT_CHECKPOINT_SIGNATURE,
   * ERR_AUDIT_ORIGIN_MISMATCH), and the log must still hold its tree: ERR_AUDIT_ENTRY_MISSING when it
   * has fewer entries (truncated or rolled back), ERR_AUDIT_ROOT_MISMATCH when its tree at that size
   * hashes to another root (rewritten, or a fork: the auditor was shown another tree). The bundle is
   * checked with {@link verifyConsistencyBundle} before it is returned, so a damaged store never hands
   * out a bundle that fails for the auditor.
   */
  async proveConsistency(
    oldNote: string,
    treeSize?: number,
  ): Promise<{
    bundle: ConsistencyBundle;
    older: Checkpoint;
    newer: Checkpoint;
    signed: boolean;
    /** The log's size when the proof was made: entries beyond `newer.size` are not covered by it. */
    headSize: number;
  }> {
    const epochs = verifierEpochs(await keyHistory(this.store));
    if (epochs.length === 0)
      throw new BulwarkError(
        'ERR_AUDIT_KEY_INVALID',
        `${this.store.location}: the log has no public key recorded (it never signed a checkpoint)`,
      );
    // Each note is opened with the key(s) in force at its size (keys.ts).
    const verifyAt = (note: string) => verifyCheckpointAt(note, epochs, this.origin);
    const old = verifyAt(oldNote);
    if (treeSize !== undefined && !(Number.isSafeInteger(treeSize) && treeSize >= old.size))
      throw new BulwarkError(
        'ERR_INVALID_ARGUMENT',
        `treeSize: ${treeSize} is below the size of the old checkpoint (${old.size}): a consistency proof runs from a smaller tree to a larger one`,
        { details: { parameter: 'treeSize', oldSize: old.size } },
      );
    await this.flush();
    const state = await this.store.state();
    if (old.size > state.size)
      throw new BulwarkError(
        'ERR_AUDIT_ENTRY_MISSING',
        `the log has ${state.size} entries but the checkpoint given covers ${old.size}: the log was truncated or rolled back`,
        { details: { size: state.size, checkpointSize: old.size } },
      );
    const tree = new StoreTree(this.store, state.size);
    if (!(await rootAt(tree, old.size)).equals(old.root))
      throw new BulwarkError(
        'ERR_AUDIT_ROOT_MISMATCH',
        `the log's tree of size ${old.size} is not the one of the checkpoint given: the log was rewritten or forked since it was signed`,
        { details: { size: old.size } },
      );
    const cps = await this.store.checkpoints();
    let note: string;
    let signed = false;
    if (treeSize !== undefined) {
      const cp = cps.find((c) => c.size === treeSize);
      if (!cp)
        throw new BulwarkError('ERR_AUDIT_CHECKPOINT_MISSING', `no checkpoint of tree size ${treeSize}`);
      note = cp.note;
    } else {
      const latest = cps[cps.length - 1];
      if (this.signer && (!latest || latest.size < state.size)) {
        note = (await this.checkpoint()).note;
        signed = true;
      } else if (!latest || latest.size < old.size)
        throw new BulwarkError(
          'ERR_AUDIT_CHECKPOINT_MISSING',
          `no stored checkpoint covers the ${old.size} entries of the checkpoint given: write one with "bulwark audit checkpoint --signing-key"`,
        );
      else note = latest.note;
    }
    const newer = verifyAt(note);
    const at = new StoreTree(this.store, newer.size);
    if (!(await rootAt(at, newer.size)).equals(newer.root))
      throw new BulwarkError(
        'ERR_AUDIT_ROOT_MISMATCH',
        `the entries do not hash to the signed root of tree size ${newer.size}: the log was rewritten (run "bulwark audit verify")`,
        { details: { size: newer.size } },
      );
    const b64 = (hs: Buffer[]) => hs.map((h) => h.toString('base64'));
    // The key hand-overs between the two trees (rotateKey), each with the proof that leads to it: an
    // auditor who trusts the key of the old checkpoint follows them to the key of the new one.
    const handovers: NonNullable<ConsistencyBundle['handovers']> = [];
    let from = old.size;
    for (const e of epochs.slice(1).filter((x) => x.since >= old.size && x.since <= newer.size)) {
      const h = cps.find((c) => c.size === e.since);
      if (!h)
        throw new BulwarkError(
          'ERR_AUDIT_KEY_INVALID',
          `the log's key history hands over to ${keyName(e.verifier.vkey)} at tree size ${e.since}, but no checkpoint of that size is stored`,
          { details: { size: e.since } },
        );
      handovers.push({
        checkpoint: h.note,
        newKey: e.verifier.vkey,
        proof: b64(await consistencyProof(at, from, e.since)),
      });
      from = e.since;
    }
    const bundle: ConsistencyBundle = {
      format: 'bulwark-audit-consistency/1',
      oldCheckpoint: old.note,
      newCheckpoint: newer.note,
      proof: b64(await consistencyProof(at, from, newer.size)),
      ...(handovers.length > 0 ? { handovers } : {}),
    };
    // No `held`: the bundle's old checkpoint is `oldNote` itself (verifyCheckpoint returns the note it
    // was given), so checking it again as the held one could not fail and cost one more signature check.
    verifyConsistencyBundle(bundle, keysAt(epochs, old.size)[0] as NoteVerifier, { origin: this.origin });
    return { bundle, older: old, newer, signed, headSize: state.size };
  }

  /**
   * The latest entry that produces `ref` (`model:sha256:…` for the `model.trained` entry of a model),
   * with the SHA-256 of its canonical bytes (`sha256:…`, what a package's lineage cites); undefined when
   * no entry produces it. The entry must hash to its stored leaf and its own bytes must say it produces
   * `ref` (the refs table is an index, not evidence): ERR_AUDIT_ENTRY_CORRUPT, ERR_AUDIT_STORE_INVALID.
   */
  async producer(ref: string): Promise<{ entry: AuditEntry; entryDigest: string } | undefined> {
    const { size } = await this.store.state();
    const idx = await this.store.producerOf(ref, size);
    if (idx === undefined) return undefined;
    const { entry, row } = await this.#producerAt(idx, ref);
    if (entry.index !== idx) throw corrupt(idx, `it says it is entry #${entry.index}`);
    return { entry, entryDigest: `sha256:${createHash('sha256').update(row.body, 'utf8').digest('hex')}` };
  }

  /**
   * Entry `idx`, which the refs index says produces `ref`: decoded and hashed as stored, and its own
   * bytes must say it produces `ref` (the refs table is an index, not evidence).
   */
  async #producerAt(idx: number, ref: string): Promise<{ entry: AuditEntry; row: StoredEntry }> {
    const [row] = await this.store.entries(idx, idx + 1);
    if (!row) throw new BulwarkError('ERR_AUDIT_ENTRY_MISSING', `entry #${idx} is missing`);
    const entry = decodeOrThrow(row);
    if (!eventRefs(entry).produces.includes(ref))
      throw new BulwarkError(
        'ERR_AUDIT_STORE_INVALID',
        `${this.store.location}: lineage index points at entry #${idx}, which does not produce ${ref}`,
      );
    return { entry, row };
  }

  /**
   * The `model.trained` entry of the model with this `sha256:` digest (the latest, if trained more than
   * once), as a package's lineage cites it (`protectModel`'s `trainingRecord`); undefined when the log
   * has none.
   *
   * Without `publicKey` the entry is checked against its stored leaf hash only, which whoever can write
   * the database recomputes after rewriting it. With `publicKey` (the log's key, held apart from the
   * database) the entry must also be proved, RFC 9162 inclusion, under the latest stored checkpoint
   * that covers it and is signed by that key: ERR_AUDIT_CHECKPOINT_MISSING when none covers it yet (no
   * checkpoint is signed here, since one signed now would sign whatever the store holds now),
   * ERR_AUDIT_CHECKPOINT_SIGNATURE / ERR_AUDIT_PROOF_INVALID when the entry or checkpoint was
   * changed. Which entry is "the latest" still comes from the lineage index, which `verify` checks.
   */
  async trainingRecord(
    modelDigest: string,
    options: { publicKey?: string | NoteVerifier } = {},
  ): Promise<
    | {
        origin: string;
        eventId: string;
        index: number;
        entryDigest: string;
        data: AuditEventData<'model.trained'>;
        /** The size of the signed checkpoint the entry was proved under (with `publicKey`). */
        checkpointSize?: number;
      }
    | undefined
  > {
    const p = await this.producer(`model:${modelDigest}`);
    if (p === undefined || p.entry.type !== 'model.trained') return undefined;
    const record = {
      origin: this.origin,
      eventId: p.entry.id,
      index: p.entry.index,
      entryDigest: p.entryDigest,
      data: p.entry.data,
    };
    if (options.publicKey === undefined) return record;
    // The latest covering checkpoint the key given signed: after a key rotation (rotateKey) a retired
    // key still proves what its checkpoints and the hand-over cover.
    const key =
      typeof options.publicKey === 'string' ? parseVerifierKey(options.publicKey) : options.publicKey;
    const signedBy = (note: string) => signaturesBy(parseNote(note).signatures, key).length > 0;
    const cover = (await this.store.checkpoints()).filter((c) => c.size > p.entry.index);
    // Failing one, the latest: its signature check then says the key given did not sign it.
    const covering = cover.filter((c) => signedBy(c.note)).at(-1) ?? cover.at(-1);
    if (!covering)
      throw new BulwarkError(
        'ERR_AUDIT_CHECKPOINT_MISSING',
        `the training record of ${modelDigest} (event ${p.entry.id}, #${p.entry.index}) is not covered by a signed checkpoint yet: write one with "bulwark audit checkpoint"`,
        { details: { index: p.entry.index } },
      );
    const bundle = await this.prove(p.entry.id, covering.size);
    const v = verifyInclusionBundle(bundle, options.publicKey, this.origin);
    const proved = `sha256:${createHash('sha256').update(bundle.entry, 'utf8').digest('hex')}`;
    if (v.entry.id !== p.entry.id || proved !== p.entryDigest)
      throw new BulwarkError(
        'ERR_AUDIT_PROOF_INVALID',
        `the entry proved for event ${p.entry.id} is not the training record read from the log`,
      );
    return { ...record, checkpointSize: v.checkpoint.size };
  }

  /**
   * Walks back from an event along what it used to the events that produced it: a prediction to the
   * package, model, training run, dataset and keys. Breadth-first; each producer is the latest entry
   * before the user that produces the reference.
   */
  async lineage(eventId: string, maxNodes = 1000): Promise<Lineage> {
    const start = await this.get(eventId);
    const nodes: LineageNode[] = [{ entry: start, depth: 0, via: null, child: null }];
    const seen = new Set([start.index]);
    const unresolved: { ref: string; usedBy: number }[] = [];
    for (let i = 0; i < nodes.length && nodes.length < maxNodes; i++) {
      const n = nodes[i] as LineageNode;
      for (const ref of eventRefs(n.entry).uses) {
        const idx = await this.store.producerOf(ref, n.entry.index);
        if (idx === undefined) {
          unresolved.push({ ref, usedBy: n.entry.index });
          continue;
        }
        if (seen.has(idx)) continue;
        seen.add(idx);
        const { entry: producer } = await this.#producerAt(idx, ref);
        nodes.push({ entry: producer, depth: n.depth + 1, via: ref, child: n.entry.index });
      }
    }
    return { nodes, unresolved };
  }

  /**
   * Verifies the whole log without trusting the store: recomputes every leaf hash from the entry
   * bytes, checks each entry's envelope (with `schema`, its data too), canonical form and position, rebuilds the tree and compares
   * it with every cached subtree, with the root of every checkpoint (whose signature is checked with
   * `publicKey`, or the key recorded in the log when none is given) and with the current head, and
   * checks a consistency proof between successive checkpoints. Throws the first failure found, with
   * a distinct code (ERR_AUDIT_ENTRY_CORRUPT, ERR_AUDIT_ENTRY_ORDER, ERR_AUDIT_ENTRY_MISSING,
   * ERR_AUDIT_ROOT_MISMATCH, ERR_AUDIT_CHECKPOINT_SIGNATURE, ERR_AUDIT_INCONSISTENT, ...).
   */
  async verify(
    options: {
      publicKey?: string | NoteVerifier;
      /**
       * Signed checkpoint notes of this log that the caller kept from earlier (`bulwark audit
       * checkpoint --out`, a proof bundle's `checkpoint`): the log must still hold each one's tree.
       * Without one, a store rolled back or replaced as a whole, or a fork shown to this caller, is
       * self-consistent and passes: nothing inside a log can show what it used to hold.
       */
      checkpoints?: readonly string[];
      onProgress?: (done: number, total: number) => void;
      pageSize?: number;
      /** Also check every entry's data against its type's schema (slower; default false). */
      schema?: boolean;
    } = {},
  ): Promise<VerifyReport> {
    const t0 = performance.now();
    await this.flush();
    let given: NoteVerifier | undefined;
    let keySource: 'argument' | 'log' = 'argument';
    const history = await keyHistory(this.store);
    if (options.publicKey !== undefined) {
      given = typeof options.publicKey === 'string' ? parseVerifierKey(options.publicKey) : options.publicKey;
    } else keySource = 'log';
    // The keys checkpoints are checked with: the log's, by tree size (keys.ts), when no key was given
    // or the key given is one of them; otherwise the key given alone, so that a wrong key fails on the
    // first stored checkpoint's signature, as it did before keys could rotate.
    const inHistory = given === undefined || history.some((k) => k.vkey === given.vkey);
    const epochs: VerifierEpoch[] =
      inHistory && history.length > 0
        ? verifierEpochs(history)
        : given
          ? [{ since: 0, verifier: given }]
          : [];
    const stored = await this.store.checkpoints();
    const held = options.checkpoints ?? [];
    if ((stored.length > 0 || held.length > 0) && epochs.length === 0)
      throw new BulwarkError(
        'ERR_AUDIT_KEY_INVALID',
        'the log has checkpoints but no public key was given or recorded',
      );
    // A note is opened with the key(s) in force at its size (keys.ts).
    const verifyAt = (note: string) => verifyCheckpointAt(note, epochs, this.origin);
    const heads: { cp: Checkpoint; held: boolean }[] = stored.map((c) => {
      const cp = verifyAt(c.note);
      if (cp.size !== c.size || !cp.root.equals(c.root))
        throw new BulwarkError(
          'ERR_AUDIT_CHECKPOINT_INVALID',
          `checkpoint row of size ${c.size} does not match its signed note`,
        );
      return { cp, held: false };
    });
    // A key of another log, or a log created with another key: checked after the stored checkpoints
    // (which then fail their signature check first, as before), because with no checkpoint in the
    // store there was nothing to fail, and a store swapped for another log passed.
    if (given !== undefined) {
      if (given.name !== this.origin)
        throw new BulwarkError(
          'ERR_AUDIT_ORIGIN_MISMATCH',
          `the key given is for log ${JSON.stringify(given.name)}; ${this.store.location} holds log ${JSON.stringify(this.origin)}`,
          { details: { origin: this.origin, key: given.name } },
        );
      if (!inHistory)
        throw new BulwarkError(
          'ERR_AUDIT_KEY_INVALID',
          history.length === 1
            ? `${this.store.location} was created with another key (${keyName((history[0] as KeyEpoch).vkey)}), not the key given (${keyName(given.vkey)}): it is not the log of that key`
            : `${this.store.location} is signed by other keys (${history.map((k) => keyName(k.vkey)).join(', ')}), not the key given (${keyName(given.vkey)}): it is not the log of that key`,
        );
    }
    // Each hand-over the history names must be stored: a checkpoint of that size signed by both keys
    // (verifyAt checked both signatures of the ones stored).
    for (const e of epochs.slice(1))
      if (!heads.some((h) => h.cp.size === e.since))
        throw new BulwarkError(
          'ERR_AUDIT_KEY_INVALID',
          `the log's key history hands over to ${keyName(e.verifier.vkey)} at tree size ${e.since}, but no checkpoint of that size signed by both keys is stored`,
          { details: { size: e.since } },
        );
    for (const note of held) heads.push({ cp: verifyAt(note), held: true });
    // In size order whatever order the store returned them in: the rebuild below checks each head
    // when it reaches its size, and would silently skip one that came out of order.
    heads.sort((a, b) => a.cp.size - b.cp.size);
    const state = await this.store.state();
    const longestHeld = heads.filter((h) => h.held).at(-1)?.cp;
    if (longestHeld && longestHeld.size > state.size)
      throw new BulwarkError(
        'ERR_AUDIT_ENTRY_MISSING',
        `the log has ${state.size} entries but a checkpoint you hold covers ${longestHeld.size}: the log was truncated or rolled back`,
        { details: { size: state.size, checkpointSize: longestHeld.size } },
      );
    const longest = heads[heads.length - 1]?.cp;
    if (longest && longest.size > state.size)
      throw new BulwarkError(
        'ERR_AUDIT_ENTRY_MISSING',
        `the log has ${state.size} entries but a signed checkpoint covers ${longest.size}: entries were removed`,
        { details: { size: state.size, checkpointSize: longest.size } },
      );
    // Rows beyond the head are in no tree: `verify` would never read them, while `tail`, `get` and
    // lineage used to show them as logged.
    const beyond = await this.store.rowsBeyondHead();
    if (beyond.entries > 0 || beyond.refs > 0)
      throw new BulwarkError(
        'ERR_AUDIT_STORE_INVALID',
        `${this.store.location}: ${beyond.entries} entries and ${beyond.refs} lineage index rows are stored beyond the tree head (size ${beyond.size}): they were inserted outside the log`,
        { details: { size: beyond.size, entries: beyond.entries, refs: beyond.refs } },
      );

    const rotations: { index: number; previousKey: string; newKey: string }[] = [];
    const recordSigners = new Map<string, number>();
    let unsignedRecords = 0;
    const frontier = Frontier.empty();
    const pageSize = options.pageSize ?? 8192;
    let next = 0;
    let hi = 0;
    let nodesChecked = 0;
    const checkRoot = () => {
      while (hi < heads.length && (heads[hi] as { cp: Checkpoint }).cp.size === frontier.size) {
        const h = heads[hi] as { cp: Checkpoint; held: boolean };
        if (!frontier.root().equals(h.cp.root))
          throw new BulwarkError(
            'ERR_AUDIT_ROOT_MISMATCH',
            h.held
              ? `the entries do not hash to the root of the checkpoint of tree size ${h.cp.size} you hold: the log was rewritten or forked since it was signed`
              : `the entries do not hash to the signed root of tree size ${h.cp.size}: the log was rewritten`,
            { details: { size: h.cp.size } },
          );
        hi++;
      }
    };
    checkRoot();
    while (next < state.size) {
      const start = next;
      const end = Math.min(next + pageSize, state.size);
      const rows = await this.store.entries(next, end);
      const computed: NodeRow[] = [];
      const onNode = (n: NodeRow) => {
        if (n.level >= NODE_CACHE_LEVEL) computed.push(n);
      };
      const expectedRefs = new Set<string>();
      for (const row of rows) {
        if (row.index !== next)
          throw new BulwarkError('ERR_AUDIT_ENTRY_MISSING', `entry #${next} is missing from the log`, {
            details: { index: next },
          });
        const leaf = leafHash(row.body);
        if (!leaf.equals(row.leaf)) throw corrupt(row.index, 'its bytes do not match its stored leaf hash');
        const e = decodeEntry(row.body, { schema: options.schema ?? false });
        if (!e)
          throw corrupt(row.index, `it is not a canonical${options.schema ? ', schema-valid' : ''} entry`);
        if (e.index !== row.index)
          throw new BulwarkError(
            'ERR_AUDIT_ENTRY_ORDER',
            `entry at position ${row.index} says it is entry #${e.index}: entries were reordered`,
            { details: { position: row.index, index: e.index } },
          );
        if (e.id !== row.id) throw corrupt(row.index, 'its indexed id column does not match its bytes');
        if (e.type === 'log.key-rotated') {
          const d = e.data as AuditEventData<'log.key-rotated'>;
          rotations.push({ index: e.index, previousKey: d.previousKey, newKey: d.newKey });
        }
        if (e.type === 'model.trained') {
          // Without `schema` the data is only canonical JSON: recordSignatureHolds takes anything.
          const d = e.data as AuditEventData<'model.trained'>;
          const by = d?.recordedBy;
          if (by === undefined) unsignedRecords++;
          else if (!recordSignatureHolds(d))
            throw corrupt(
              row.index,
              `its writer's signature (recordedBy) does not verify under the key it names: the training record was changed after it was signed`,
            );
          else recordSigners.set(by.key, (recordSigners.get(by.key) ?? 0) + 1);
        }
        for (const ref of producedBy(e)) expectedRefs.add(`${ref}\u0000${row.index}`);
        frontier.push(leaf, onNode);
        next++;
        checkRoot();
      }
      if (next < end)
        throw new BulwarkError('ERR_AUDIT_ENTRY_MISSING', `entry #${next} is missing from the log`, {
          details: { index: next },
        });
      nodesChecked += await this.compareNodes(computed);
      await this.compareRefs(start, end, expectedRefs);
      options.onProgress?.(next, state.size);
    }
    if (!frontier.root().equals(state.root))
      throw new BulwarkError('ERR_AUDIT_ROOT_MISMATCH', 'the stored tree head does not match the entries');
    // Successive checkpoints must be consistent: check the RFC 9162 proof between each pair.
    const tree = new StoreTree(this.store, state.size);
    for (let i = 1; i < heads.length; i++) {
      const a = (heads[i - 1] as { cp: Checkpoint }).cp;
      const b = (heads[i] as { cp: Checkpoint }).cp;
      const proof = await consistencyProof(tree, a.size, b.size);
      if (!verifyConsistency(a.size, b.size, a.root, b.root, proof))
        throw new BulwarkError(
          'ERR_AUDIT_INCONSISTENT',
          `checkpoints of sizes ${a.size} and ${b.size} are not consistent`,
          {
            details: { first: a.size, second: b.size },
          },
        );
    }
    // Each hand-over of the history is recorded in the log, while the previous key was in force and
    // before the hand-over checkpoint; a rotation entry that no hand-over completes is reported.
    const links = inHistory ? history.slice(1).map((k, i) => ({ from: history[i] as KeyEpoch, to: k })) : [];
    const completes = (r: (typeof rotations)[number], l: (typeof links)[number]) =>
      r.previousKey === l.from.vkey &&
      r.newKey === l.to.vkey &&
      r.index >= l.from.since &&
      r.index < l.to.since;
    for (const l of links)
      if (!rotations.some((r) => completes(r, l)))
        throw new BulwarkError(
          'ERR_AUDIT_KEY_INVALID',
          `the log's key history hands over from ${keyName(l.from.vkey)} to ${keyName(l.to.vkey)} at tree size ${l.to.since}, but no log.key-rotated entry before it records that`,
          { details: { size: l.to.since } },
        );
    const unfinishedRotations = rotations
      .filter((r) => !links.some((l) => completes(r, l)))
      .map((r) => r.index);
    return {
      origin: this.origin,
      size: state.size,
      root: frontier.root().toString('base64'),
      entries: state.size,
      checkpoints: stored.length,
      heldCheckpoints: held.length,
      signedSize: longest?.size ?? 0,
      nodesChecked,
      keySource,
      keys: inHistory ? history.length : 1,
      unfinishedRotations,
      trainingRecords: {
        signed: [...recordSigners].map(([key, records]) => ({ key, records })),
        unsigned: unsignedRecords,
      },
      seconds: (performance.now() - t0) / 1000,
    };
  }

  /**
   * The lineage index rows of entries `[start, end)` must be exactly what those entries produce: the
   * index decides which entry lineage and `trainingRecord` cite, and a row deleted or added (the
   * entries and tree untouched) changed which training record backs a model's claims.
   */
  private async compareRefs(start: number, end: number, expected: Set<string>): Promise<void> {
    const rows = await this.store.refs(start, end);
    const found = new Set<string>();
    for (const r of rows) {
      const k = `${r.ref}\u0000${r.index}`;
      if (r.role !== 0 || !expected.has(k))
        throw new BulwarkError(
          'ERR_AUDIT_STORE_INVALID',
          `${this.store.location}: the lineage index says entry #${r.index} produces ${r.ref}, which its bytes do not say`,
          { details: { index: r.index } },
        );
      found.add(k);
    }
    for (const k of expected)
      if (!found.has(k)) {
        const [ref, index] = k.split('\u0000') as [string, string];
        throw new BulwarkError(
          'ERR_AUDIT_STORE_INVALID',
          `${this.store.location}: the lineage index lacks entry #${index} as the producer of ${ref}`,
          { details: { index: Number(index) } },
        );
      }
  }

  private async compareNodes(computed: NodeRow[]): Promise<number> {
    const byLevel = new Map<number, NodeRow[]>();
    for (const n of computed) {
      const l = byLevel.get(n.level) ?? [];
      l.push(n);
      byLevel.set(n.level, l);
    }
    for (const [level, list] of byLevel) {
      const lo = (list[0] as NodeRow).index;
      const hi = (list[list.length - 1] as NodeRow).index + 1;
      const stored = new Map((await this.store.nodes(level, lo, hi)).map((r) => [r.index, r.hash]));
      for (const n of list) {
        const h = stored.get(n.index);
        if (!h?.equals(n.hash))
          throw new BulwarkError(
            'ERR_AUDIT_STORE_INVALID',
            `cached subtree hash (level ${level}, index ${n.index}) ${h ? 'does not match' : 'is missing for'} the entries`,
          );
      }
    }
    return computed.length;
  }

  /** Waits for pending appends and closes the store. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush();
    await this.store.close();
  }
}

// Random bytes are drawn 4 KiB at a time (as node's randomUUID does): one CSPRNG call per 256 ids.
let idPool = Buffer.alloc(0);
let idPoolAt = 0;

/**
 * A new event id: a UUIDv7 (RFC 9562 §5.7: 48-bit Unix milliseconds, version, 74 random bits), so ids
 * are unique without coordination between writers and arrive nearly in order, which keeps the
 * store's id index append-mostly.
 */
export function eventId(): string {
  if (idPoolAt + 16 > idPool.length) {
    idPool = randomBytes(4096);
    idPoolAt = 0;
  }
  const b = Buffer.from(idPool.subarray(idPoolAt, idPoolAt + 16));
  idPoolAt += 16;
  const ms = Date.now();
  b.writeUIntBE(ms, 0, 6);
  b[6] = 0x70 | ((b[6] as number) & 0x0f);
  b[8] = 0x80 | ((b[8] as number) & 0x3f);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function notFound(id: string): BulwarkError {
  return new BulwarkError('ERR_AUDIT_EVENT_NOT_FOUND', `no event with id ${JSON.stringify(id)} in the log`, {
    details: { id },
  });
}

function corrupt(index: number, why: string): BulwarkError {
  return new BulwarkError('ERR_AUDIT_ENTRY_CORRUPT', `entry #${index} was altered: ${why}`, {
    details: { index },
  });
}

/**
 * What an entry produces, from its bytes. Verification checks envelopes only by default, so the data
 * may not match its type's schema: an entry whose refs cannot be read is corrupt, not a crash.
 */
function producedBy(e: AuditEntry): string[] {
  try {
    return eventRefs(e).produces;
  } catch {
    throw corrupt(e.index, "its data does not match its type's schema");
  }
}

function decodeOrThrow(row: StoredEntry): AuditEntry {
  const e = decodeEntry(row.body);
  if (!e || !leafHash(row.body).equals(row.leaf))
    throw corrupt(row.index, 'it does not decode or hash as stored');
  return e;
}

/**
 * Throws ERR_AUDIT_KEY_INVALID unless `signer` is named for the log and is the key its history has in
 * force (a retired key signs nothing more). `create`: a log with no key yet records this one.
 */
async function requireKeyInForce(
  store: AuditStore,
  origin: string,
  signer: NoteSigner,
  create: boolean,
): Promise<void> {
  if (signer.name !== origin)
    throw new BulwarkError(
      'ERR_AUDIT_KEY_INVALID',
      `signing key is named ${JSON.stringify(signer.name)}; this log's key must be named ${JSON.stringify(origin)}`,
    );
  const mine = signer.verifier.vkey;
  // After a rotation the key in force is the history's last; a retired key signs nothing more.
  const history = await keyHistory(store);
  const vkey = history.length > 1 || !create ? history.at(-1)?.vkey : await store.initMeta('vkey', mine);
  if (vkey !== mine) {
    const retired = history.find((k) => k.vkey === mine);
    throw new BulwarkError(
      'ERR_AUDIT_KEY_INVALID',
      retired
        ? `this signing key was retired: the log's checkpoints are signed by ${keyName(vkey as string)} since tree size ${(history[history.indexOf(retired) + 1] as KeyEpoch).since}`
        : vkey === undefined
          ? 'this log has no signing key recorded'
          : `this log's checkpoints are signed by another key (${keyName(vkey)})`,
    );
  }
}
