/**
 * A training record signed by its writer. The log's checkpoint key proves that an entry is in the log
 * and unchanged since; it does not say who wrote it: whoever can append (the database, any process with
 * the store's URL) can add a `model.trained` record of a run that never happened, and that record
 * would back a package's privacy or adversarial-training claim (`model protect --audit`). The training
 * job signs its record with a key of its own (`bulwark train --record-key`, an Ed25519 key in the audit
 * key format, `bulwark audit keygen --name ...`), and `model protect --trainer-key` accepts as backing
 * only a record that key signed.
 *
 * Signed: a context line naming what is signed, then the canonical JSON (RFC 8785 form, events.ts) of
 * the record's data without `recordedBy`. The context keeps the signature from being taken for one
 * over any other message of the same key (a checkpoint note, say).
 */
import { BulwarkError } from '../core/index.js';
import { type AuditEventData, canonicalJson } from './events.js';
import { keyName } from './keys.js';
import { type NoteSigner, type NoteVerifier, parseVerifierKey } from './note.js';

type TrainedData = AuditEventData<'model.trained'>;

/** What a record's signature covers, before the record's canonical JSON. */
export const RECORD_SIGNATURE_CONTEXT = 'bulwark/audit/model.trained/v1\n';

function signedBytes(data: TrainedData): Buffer {
  const { recordedBy: _, ...rest } = data;
  return Buffer.from(RECORD_SIGNATURE_CONTEXT + canonicalJson(rest), 'utf8');
}

/** `data` with `recordedBy`: `signer`'s public key and its signature of the rest of the record. */
export function signTrainingRecord(data: TrainedData, signer: NoteSigner): TrainedData {
  const signature = signer.sign(signedBytes(data)).toString('base64');
  return { ...data, recordedBy: { key: signer.verifier.vkey, signature } };
}

/**
 * Why this record does not count as signed by a key among `trusted`: unsigned, signed by a key not
 * trusted, or a signature that does not verify (the record was changed after it was signed); undefined
 * when one of them signed it as it is. `what` names the record in the reason.
 */
export function recordSignatureProblem(
  data: TrainedData,
  trusted: readonly NoteVerifier[],
  what: string,
): string | undefined {
  const by = data.recordedBy;
  const keys = trusted.map((k) => keyName(k.vkey)).join(', ');
  if (!by)
    return `${what} is not signed by its writer (trained without --record-key); the trainer key given (${keys}) backs only records it signed`;
  const key = trusted.find((k) => k.vkey === by.key);
  if (!key) return `${what} is signed by ${keyName(by.key)}, not by a trainer key given (${keys})`;
  if (!key.verify(signedBytes(data), Buffer.from(by.signature, 'base64')))
    return `${what}: its writer's signature (${keyName(by.key)}) does not verify: the record was changed after it was signed`;
  return undefined;
}

/**
 * The key among `trusted` that signed this record; ERR_LINEAGE_UNBACKED naming why not otherwise
 * ({@link recordSignatureProblem}).
 */
export function requireRecordSignedBy(
  data: TrainedData,
  trusted: readonly NoteVerifier[],
  what: string,
): NoteVerifier {
  const problem = recordSignatureProblem(data, trusted, what);
  if (problem !== undefined) throw new BulwarkError('ERR_LINEAGE_UNBACKED', problem);
  return trusted.find((k) => k.vkey === data.recordedBy?.key) as NoteVerifier;
}

/**
 * Whether a signed record's signature verifies under the key it names (not whether that key is one to
 * trust: {@link requireRecordSignedBy} says that). `audit verify` checks every signed record this way, so
 * a record changed after its writer signed it is found without knowing the writer's key beforehand.
 */
export function recordSignatureHolds(data: TrainedData): boolean {
  const by = data.recordedBy;
  if (!by) return false;
  try {
    return parseVerifierKey(by.key).verify(signedBytes(data), Buffer.from(by.signature, 'base64'));
  } catch {
    return false;
  }
}
