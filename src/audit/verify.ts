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
  if (!r.success) {
    const i = r.error.issues[0];
    throw proofInvalid(`malformed proof (${i ? `${i.path.join('.') || 'proof'}: ${i.message}` : 'invalid'})`);
  }
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
