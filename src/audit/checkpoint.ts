/**
 * Transparency-log checkpoints (C2SP `tlog-checkpoint`): a signed note whose text is
 *
 * ```
 * <origin>
 * <tree size, decimal, no leading zeros>
 * <base64 RFC 9162 root hash>
 * ```
 *
 * signed by the log's Ed25519 key (see {@link signNote}); the key name matches the origin.
 */
import { BulwarkError } from '../core/index.js';
import { EMPTY_ROOT, HASH_SIZE } from './merkle.js';
import { type NoteSigner, type NoteVerifier, openNote, signNote } from './note.js';

/** A tree head: what a checkpoint commits to. */
export interface TreeHead {
  origin: string;
  size: number;
  root: Buffer;
}

/** A checkpoint as stored and exchanged: the tree head and the signed note text. */
export interface Checkpoint extends TreeHead {
  note: string;
}

const EMPTY_TREE = 'a tree of size 0 has the root SHA-256() (RFC 9162 §2.1.1)';

function invalid(why: string): BulwarkError {
  return new BulwarkError('ERR_AUDIT_CHECKPOINT_INVALID', `malformed checkpoint: ${why}`);
}

/** The checkpoint body (note text) for a tree head. */
export function checkpointText(head: TreeHead): string {
  if (head.origin.length === 0 || /[\n\r]/.test(head.origin))
    throw invalid('origin must be one non-empty line');
  if (!Number.isSafeInteger(head.size) || head.size < 0)
    throw invalid('tree size must be a non-negative integer');
  if (head.root.length !== HASH_SIZE) throw invalid('root hash must be 32 bytes');
  if (head.size === 0 && !head.root.equals(EMPTY_ROOT)) throw invalid(EMPTY_TREE);
  return `${head.origin}\n${head.size}\n${head.root.toString('base64')}\n`;
}

/** Parses checkpoint text (without signatures). Extension lines are allowed and ignored. */
export function parseCheckpointText(text: string): TreeHead {
  const lines = text.split('\n');
  if (lines.length < 4 || lines[lines.length - 1] !== '')
    throw invalid('expected origin, size and root lines');
  const [origin, sizeText, rootText] = lines as [string, string, string];
  const ext = lines.slice(3, -1);
  if (origin.length === 0) throw invalid('empty origin');
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText))
    throw invalid(`tree size ${JSON.stringify(sizeText.slice(0, 30))}`);
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw invalid('tree size too large');
  const root = Buffer.from(rootText, 'base64');
  if (root.length !== HASH_SIZE || root.toString('base64') !== rootText)
    throw invalid('root hash is not base64 of 32 bytes');
  if (ext.some((l) => l.length === 0)) throw invalid('empty extension line');
  // RFC 9162 §2.1.1: the empty tree has exactly one root, MTH({}) = SHA-256(). The consistency check
  // from size 0 (transparency-dev's, src/audit/merkle.ts) needs only an empty proof, so a size-0
  // checkpoint stating another root would otherwise pass as a prefix of every later tree.
  if (size === 0 && !root.equals(EMPTY_ROOT)) throw invalid(EMPTY_TREE);
  return { origin, size, root };
}

/** Signs a tree head into a checkpoint. */
export function signCheckpoint(head: TreeHead, signer: NoteSigner): Checkpoint {
  return { ...head, note: signNote(checkpointText(head), [signer]) };
}

/**
 * Verifies a checkpoint note with the log's public key (and, when given, its expected origin): the
 * third-party check. Throws ERR_AUDIT_CHECKPOINT_SIGNATURE (not signed by this key, or a bad
 * signature), ERR_AUDIT_CHECKPOINT_INVALID (malformed) or ERR_AUDIT_ORIGIN_MISMATCH.
 */
export function verifyCheckpoint(note: string, verifier: NoteVerifier, origin?: string): Checkpoint {
  const text = openNote(note, verifier);
  const head = parseCheckpointText(text);
  const expected = origin ?? verifier.name;
  if (head.origin !== expected)
    throw new BulwarkError(
      'ERR_AUDIT_ORIGIN_MISMATCH',
      `checkpoint is for log ${JSON.stringify(head.origin)}, expected ${JSON.stringify(expected)}`,
      { details: { origin: head.origin } },
    );
  return { ...head, note };
}
