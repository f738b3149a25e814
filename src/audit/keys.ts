/**
 * The log's checkpoint keys over time: which key signs the checkpoints of which tree sizes, after the
 * key has been rotated (`AuditLog.rotateKey`, docs/audit.md "Rotating the log's key").
 *
 * A rotation hands the log from key A to key B in two steps: a `log.key-rotated` entry naming both,
 * then a *hand-over checkpoint* that covers it and is signed by both keys (a C2SP signed note may carry
 * several signatures). Checkpoints below the hand-over's size are A's, the hand-over is both keys', and
 * those above are B's. Whoever trusts either key can therefore follow the log across the rotation:
 * the hand-over is signed by the key they trust and names, through the entry it covers, the other
 * one. Someone who later steals the retired key A can sign nothing that passes for the log beyond
 * the hand-over, and every earlier checkpoint must be consistent (RFC 9162) with the hand-over's tree.
 *
 * The history is kept in the store's metadata (`keys`: `[{vkey, since}]`, `since` the size of the
 * hand-over, 0 for the first key) so that the key of a checkpoint is known before its signature is
 * checked. The store is not trusted for it: `AuditLog.verify` checks each step against the log (the
 * entry and a hand-over checkpoint signed by both keys).
 */
import { BulwarkError } from '../core/index.js';
import { type Checkpoint, parseCheckpointText, verifyCheckpoint } from './checkpoint.js';
import { type NoteVerifier, parseNote, parseVerifierKey } from './note.js';
import type { AuditStore } from './store.js';

/** A key of the log and the tree size from which it signs (its hand-over's size; 0 for the first). */
export interface KeyEpoch {
  vkey: string;
  since: number;
}

/** An epoch with its key parsed. */
export interface VerifierEpoch {
  since: number;
  verifier: NoteVerifier;
}

function damaged(store: AuditStore, why: string): BulwarkError {
  return new BulwarkError('ERR_AUDIT_STORE_INVALID', `${store.location}: the log's key history ${why}`);
}

/**
 * The log's keys in order, from its metadata: `keys` after a rotation, else the one key recorded
 * when the log was created (`vkey`); empty when no key was ever recorded. ERR_AUDIT_STORE_INVALID
 * when the history is malformed.
 */
export async function keyHistory(store: AuditStore): Promise<KeyEpoch[]> {
  const raw = await store.getMeta('keys');
  if (raw === undefined) {
    const vkey = await store.getMeta('vkey');
    return vkey === undefined ? [] : [{ vkey, since: 0 }];
  }
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw damaged(store, 'is not JSON');
  }
  if (!Array.isArray(v) || v.length === 0) throw damaged(store, 'is not a list of keys');
  const out: KeyEpoch[] = [];
  for (const [i, e] of v.entries()) {
    const o = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
    const { vkey, since } = o;
    if (typeof vkey !== 'string' || !Number.isSafeInteger(since))
      throw damaged(store, `entry ${i} is not {vkey, since}`);
    const prev = out.at(-1);
    if ((i === 0 && since !== 0) || (prev && (since as number) <= prev.since))
      throw damaged(store, 'does not start at size 0 and grow');
    if (out.some((k) => k.vkey === vkey)) throw damaged(store, 'names a key twice');
    out.push({ vkey, since: since as number });
  }
  return out;
}

/** The epochs with their keys parsed (ERR_AUDIT_KEY_INVALID for a key that does not parse). */
export function verifierEpochs(history: readonly KeyEpoch[]): VerifierEpoch[] {
  return history.map((h) => ({ since: h.since, verifier: parseVerifierKey(h.vkey) }));
}

/**
 * The keys that must have signed a checkpoint of tree size `size`: the key in force, and at a
 * hand-over's size the previous key too.
 */
export function keysAt(epochs: readonly VerifierEpoch[], size: number): NoteVerifier[] {
  let i = 0;
  while (i + 1 < epochs.length && (epochs[i + 1] as VerifierEpoch).since <= size) i++;
  const e = epochs[i] as VerifierEpoch;
  return i > 0 && e.since === size ? [(epochs[i - 1] as VerifierEpoch).verifier, e.verifier] : [e.verifier];
}

/** A verifier key as its name and key id (`name+1a2b3c4d`): how messages name a key. */
export function keyName(vkey: string): string {
  return vkey.split('+').slice(0, 2).join('+');
}

/**
 * Verifies a checkpoint note with the key(s) in force at its tree size ({@link keysAt}; the size is
 * read from the note's text before its signatures are checked: it only chooses the key, and the
 * signature then binds it). Throws as `verifyCheckpoint` does.
 */
export function verifyCheckpointAt(
  note: string,
  epochs: readonly VerifierEpoch[],
  origin: string,
): Checkpoint {
  const size = parseCheckpointText(parseNote(note).text).size;
  let cp: Checkpoint | undefined;
  for (const v of keysAt(epochs, size)) cp = verifyCheckpoint(note, v, origin);
  return cp as Checkpoint;
}
