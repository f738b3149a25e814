/**
 * Verification for third parties: functions that need only the log's public key (and the data
 * handed to them), never the log's database. An auditor checks an inclusion proof from
 * `bulwark audit prove`, or that a newer checkpoint extends an older one.
 */
import { z } from 'zod';
import { BulwarkError } from '../core/index.js';
import { type Checkpoint, verifyCheckpoint } from './checkpoint.js';
import { type AuditEntry, decodeEntry, MAX_ENTRY_CHARS } from './events.js';
import { HASH_SIZE, leafHash, verifyConsistency, verifyInclusion } from './merkle.js';
import { type NoteVerifier, parseVerifierKey } from './note.js';

/** An inclusion proof as `bulwark audit prove` prints it (JSON). */
export interface InclusionBundle {
  format: 'bulwark-audit-inclusion/1';
  /** The entry's leaf index. */
  index: number;
  /** The tree size the proof is for; must equal the checkpoint's. */
  treeSize: number;
  /** The entry's exact bytes (canonical JSON). */
  entry: string;
  /** RFC 9162 inclusion path, base64 hashes, leaf side first. */
  proof: string[];
  /** The signed checkpoint note the proof leads to. */
  checkpoint: string;
}

const b64Hash = z
  .string()
  .refine(
    (s) => Buffer.from(s, 'base64').length === HASH_SIZE && Buffer.from(s, 'base64').toString('base64') === s,
    {
      message: 'expected a base64 SHA-256 hash',
    },
  );

const bundleSchema = z.strictObject({
  format: z.literal('bulwark-audit-inclusion/1'),
  index: z.number().int().min(0),
  treeSize: z.number().int().min(1),
  entry: z.string().max(MAX_ENTRY_CHARS),
  proof: z.array(b64Hash).max(64),
  checkpoint: z.string().max(1 << 16),
});

function proofInvalid(why: string): BulwarkError {
  return new BulwarkError('ERR_AUDIT_PROOF_INVALID', `inclusion proof rejected: ${why}`);
}

/** The first schema issue of a malformed bundle, as `path: message` (`whole` when at the top). */
function firstIssue(error: z.ZodError, whole: string): string {
  const i = error.issues[0];
  return i ? `${i.path.join('.') || whole}: ${i.message}` : 'invalid';
}

function asVerifier(key: string | NoteVerifier): NoteVerifier {
  return typeof key === 'string' ? parseVerifierKey(key) : key;
}

/** The verified facts of an inclusion proof. */
export interface VerifiedInclusion {
  entry: AuditEntry;
  checkpoint: Checkpoint;
}

/**
 * Checks an inclusion proof with only the log's public key: the checkpoint's signature (and origin,
 * which defaults to the key's name), that the proof is for the checkpoint's tree size, that the entry
 * is a canonical v1 entry at the stated index, and the RFC 9162 §2.1.3.2 path to the signed root.
 * Throws ERR_AUDIT_CHECKPOINT_SIGNATURE, ERR_AUDIT_PROOF_SIZE or ERR_AUDIT_PROOF_INVALID.
 *
 * @example
 * ```ts
 * const { entry } = verifyInclusionBundle(JSON.parse(proofJson), 'bulwark.example/audit+1a2b3c4d+AX…');
 * ```
 */
export function verifyInclusionBundle(
  bundle: unknown,
  publicKey: string | NoteVerifier,
  origin?: string,
): VerifiedInclusion {
  const verifier = asVerifier(publicKey);
  const r = bundleSchema.safeParse(bundle);
  if (!r.success) throw proofInvalid(`malformed proof (${firstIssue(r.error, 'proof')})`);
  const b = r.data;
  const checkpoint = verifyCheckpoint(b.checkpoint, verifier, origin);
  if (b.treeSize !== checkpoint.size)
    throw new BulwarkError(
      'ERR_AUDIT_PROOF_SIZE',
      `the proof is for tree size ${b.treeSize} but the checkpoint is of size ${checkpoint.size}`,
      { details: { proofSize: b.treeSize, checkpointSize: checkpoint.size } },
    );
  const entry = decodeEntry(b.entry);
  if (!entry) throw proofInvalid('the entry is not a canonical, schema-valid audit entry');
  if (entry.index !== b.index)
    throw proofInvalid(`the entry says index ${entry.index}, the proof ${b.index}`);
  const ok = verifyInclusion(
    b.index,
    b.treeSize,
    leafHash(b.entry),
    b.proof.map((p) => Buffer.from(p, 'base64')),
    checkpoint.root,
  );
  if (!ok)
    throw proofInvalid(
      `the path does not lead from entry #${b.index} to the signed root of size ${b.treeSize}`,
    );
  return { entry, checkpoint };
}

/**
 * Checks that checkpoint `newer` extends checkpoint `older` (both signed by the log's key) with an
 * RFC 9162 consistency proof (base64 hashes, from `AuditLog.consistency`). Throws
 * ERR_AUDIT_CHECKPOINT_SIGNATURE or ERR_AUDIT_INCONSISTENT.
 */
export function verifyCheckpointConsistency(
  older: string,
  newer: string,
  proof: readonly string[],
  publicKey: string | NoteVerifier,
  origin?: string,
): { older: Checkpoint; newer: Checkpoint } {
  const verifier = asVerifier(publicKey);
  const a = verifyCheckpoint(older, verifier, origin);
  const b = verifyCheckpoint(newer, verifier, origin);
  const hashes = proof.map((p) => Buffer.from(p, 'base64'));
  if (a.size > b.size || !verifyConsistency(a.size, b.size, a.root, b.root, hashes))
    throw new BulwarkError(
      'ERR_AUDIT_INCONSISTENT',
      `checkpoint of size ${b.size} does not extend the one of size ${a.size}`,
      {
        details: { first: a.size, second: b.size },
      },
    );
  return { older: a, newer: b };
}

/**
 * A consistency proof as `bulwark audit prove --from OLD.note` writes it (JSON): everything an auditor
 * needs, with the log's public key, to check that the log's tree today extends the one they saw.
 */
export interface ConsistencyBundle {
  format: 'bulwark-audit-consistency/1';
  /** The signed checkpoint note the auditor kept (the older, smaller tree). */
  oldCheckpoint: string;
  /** A signed checkpoint note of the log's tree now (size >= the old one's). */
  newCheckpoint: string;
  /**
   * RFC 9162 §2.1.4 `PROOF(m, D[n])` from the old size (or the last hand-over's) to the new one,
   * base64 hashes.
   */
  proof: string[];
  /**
   * The log's key hand-overs between the two checkpoints, in order (`AuditLog.rotateKey`): each one's
   * checkpoint is signed by the key in force before it and by `newKey`, and `proof` runs to it from
   * the previous tree (the old checkpoint's, or the previous hand-over's). Absent when one key signed
   * both checkpoints.
   */
  handovers?: { checkpoint: string; newKey: string; proof: string[] }[];
}

const consistencyBundleSchema = z.strictObject({
  format: z.literal('bulwark-audit-consistency/1'),
  oldCheckpoint: z.string().max(1 << 16),
  newCheckpoint: z.string().max(1 << 16),
  // A consistency proof between trees of at most 2^53 leaves has fewer than 2 * 53 hashes.
  proof: z.array(b64Hash).max(128),
  handovers: z
    .array(
      z.strictObject({
        checkpoint: z.string().max(1 << 16),
        newKey: z.string().max(512),
        proof: z.array(b64Hash).max(128),
      }),
    )
    .max(64)
    .optional(),
});

/** The verified facts of a consistency bundle. */
export interface VerifiedConsistency {
  /** The older tree head (the bundle's `oldCheckpoint`). */
  older: Checkpoint;
  /** The newer tree head, proved to extend `older`. */
  newer: Checkpoint;
  /** The checkpoint the caller held (`options.held`), when given: the bundle starts from its tree. */
  held?: Checkpoint;
  /**
   * The key that signed the new checkpoint (`name+id+key`): the key given, or after hand-overs the
   * last one's new key, which the caller may trust from now on (each hand-over was signed by the key
   * before it).
   */
  key: string;
}

/**
 * Checks a consistency bundle with only the log's public key, without the log's database: both
 * checkpoint notes are signed by the key and name the log (its key name, or `options.origin`), the
 * new tree is not smaller than the old one, and the RFC 9162 §2.1.4.2 proof shows the old tree is a
 * prefix of the new one. With `options.held` (a checkpoint note the auditor kept earlier), the bundle
 * must start from that very tree: without it, the bundle shows only that two trees the log signed are
 * consistent, not that either is the one the auditor saw.
 *
 * Refusals, each with its own code:
 * - ERR_AUDIT_PROOF_INVALID: a malformed bundle; a proof that does not verify (altered in transit, or
 *   the log forked and cannot give a valid one: ask for a new proof; a log that cannot produce one
 *   has forked); a bundle that starts from another size than the held checkpoint;
 * - ERR_AUDIT_CHECKPOINT_SIGNATURE / ERR_AUDIT_CHECKPOINT_INVALID / ERR_AUDIT_ORIGIN_MISMATCH: a note
 *   not signed by the key (another log), malformed, or naming another log;
 * - ERR_AUDIT_INCONSISTENT: a fork proved by signatures alone: two notes (old, new or held) signed by
 *   the key with the same size and different roots. The error's details carry the size and both
 *   roots; the two notes are the evidence of the log's misbehaviour (RFC 9162 §8.1.4 / RFC 6962
 *   §5.3: a log must never sign two tree heads that are not consistent);
 * - ERR_AUDIT_ENTRY_MISSING: a rollback: the new tree is smaller than the old (or held) one.
 *
 * @example
 * ```ts
 * const { newer } = verifyConsistencyBundle(JSON.parse(bundleJson), publicKey, { held: myCheckpointNote });
 * ```
 */
export function verifyConsistencyBundle(
  bundle: unknown,
  publicKey: string | NoteVerifier,
  options: { origin?: string; held?: string } = {},
): VerifiedConsistency {
  const verifier = asVerifier(publicKey);
  const r = consistencyBundleSchema.safeParse(bundle);
  if (!r.success)
    throw new BulwarkError(
      'ERR_AUDIT_PROOF_INVALID',
      `consistency proof rejected: malformed bundle (${firstIssue(r.error, 'bundle')})`,
    );
  const b = r.data;
  // Every note must be signed by the key in force at its tree and name the same log: verifyCheckpoint
  // checks each one's origin line against `options.origin` (default the key's name), so notes that
  // pass name one log. The key given signs the old (and held) checkpoint; each hand-over is signed by
  // the key before it and by its new key, which then signs what follows.
  const older = verifyCheckpoint(b.oldCheckpoint, verifier, options.origin);
  const held =
    options.held === undefined ? undefined : verifyCheckpoint(options.held, verifier, options.origin);
  let key = verifier;
  const handovers: { cp: Checkpoint; proof: string[] }[] = [];
  for (const [i, h] of (b.handovers ?? []).entries()) {
    const cp = verifyCheckpoint(h.checkpoint, key, options.origin);
    const next = parseVerifierKey(h.newKey);
    if (next.name !== key.name || next.vkey === key.vkey)
      throw new BulwarkError(
        'ERR_AUDIT_PROOF_INVALID',
        `consistency proof rejected: hand-over ${i + 1} names ${next.name === key.name ? 'the key already in force' : `a key of another log (${JSON.stringify(next.name)})`}`,
      );
    verifyCheckpoint(h.checkpoint, next, options.origin);
    handovers.push({ cp, proof: h.proof });
    key = next;
  }
  const newer = verifyCheckpoint(b.newCheckpoint, key, options.origin);
  const heads: [string, Checkpoint][] = [
    ['held', held],
    ['old', older],
    ...handovers.map((h, i): [string, Checkpoint] => [`hand-over ${i + 1}`, h.cp]),
    ['new', newer],
  ].filter((h): h is [string, Checkpoint] => h[1] !== undefined);
  // A fork needs no proof to show: one key signed two different trees of the same size. This is
  // checked first, because it is conclusive evidence whatever the rest of the bundle says.
  for (const [i, [na, a]] of heads.entries())
    for (const [nb, b2] of heads.slice(i + 1))
      if (a.size === b2.size && !a.root.equals(b2.root)) {
        const roots = [a.root.toString('base64'), b2.root.toString('base64')];
        throw new BulwarkError(
          'ERR_AUDIT_INCONSISTENT',
          `fork: the log's key signed two different trees of size ${a.size} (${na} checkpoint root ${roots[0]}, ${nb} checkpoint root ${roots[1]}): keep both signed notes, they prove the log misbehaved`,
          {
            details: {
              size: a.size,
              [`${na}Root`]: roots[0] as string,
              [`${nb}Root`]: roots[1] as string,
            },
          },
        );
      }
  const from = held && held.size > older.size ? held : older;
  if (newer.size < from.size)
    throw new BulwarkError(
      'ERR_AUDIT_ENTRY_MISSING',
      `rollback: the new checkpoint covers ${newer.size} entries, fewer than the ${from.size} of the ${from === held ? 'checkpoint you hold' : 'old checkpoint'}: the log was truncated or rolled back`,
      { details: { oldSize: from.size, newSize: newer.size } },
    );
  if (held && held.size !== older.size)
    throw new BulwarkError(
      'ERR_AUDIT_PROOF_INVALID',
      `consistency proof rejected: it starts from the tree of size ${older.size}, not from the checkpoint you hold (size ${held.size}): ask for a proof from yours ("bulwark audit prove --from")`,
      { details: { oldSize: older.size, heldSize: held.size } },
    );
  // Old tree → each hand-over → new tree, every step an RFC 9162 consistency proof.
  const steps = [...handovers, { cp: newer, proof: b.proof }];
  let prev = older;
  for (const step of steps) {
    const ok =
      step.cp.size >= prev.size &&
      verifyConsistency(
        prev.size,
        step.cp.size,
        prev.root,
        step.cp.root,
        step.proof.map((p) => Buffer.from(p, 'base64')),
      );
    if (!ok)
      throw new BulwarkError(
        'ERR_AUDIT_PROOF_INVALID',
        `consistency proof rejected: it does not show that the tree of size ${step.cp.size} extends the tree of size ${prev.size}: the proof was altered, or the log forked; ask the log for a new proof (a log that cannot give one that verifies has forked: keep both notes)`,
        { details: { oldSize: prev.size, newSize: step.cp.size } },
      );
    prev = step.cp;
  }
  return held ? { older, newer, held, key: key.vkey } : { older, newer, key: key.vkey };
}
