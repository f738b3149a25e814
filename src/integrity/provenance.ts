/**
 * Provenance of training data: every batch a model trains on must be a protected dataset whose
 * digest the audit log records as the output of a `dataset.protected` event, so data that did not go
 * through the protection step (and its schema check and key custody) cannot slip into training — the
 * ingestion path a poisoner would use. The check fails closed: an unknown digest, an event of another
 * type, an entry whose bytes do not match its leaf hash, or (with a public key) an entry not covered by
 * a verified signed checkpoint is a refusal; an unreachable log is ERR_AUDIT_UNAVAILABLE from the log.
 */
import { type AuditLog, decodeEntry, leafHash, verifyInclusionBundle } from '../audit/index.js';
import { BulwarkError, fileDigest as coreFileDigest } from '../core/index.js';

/** `sha256:<hex>` of a file's bytes (the digest `dataset.protected` events record). */
export async function fileDigest(path: string): Promise<string> {
  return coreFileDigest(path, 'data file', 'cannot read data file');
}

/** What the log says about a dataset that passed the check. */
export interface ProvenanceRecord {
  source: string;
  digest: string;
  eventId: string;
  index: number;
  time: string;
  rows: number;
  protectedFields: string[];
  keyIds: string[];
  /** True when the entry's inclusion was verified against a signed checkpoint with the log's public key. */
  verifiedInclusion: boolean;
}

export interface ProvenanceOptions {
  /**
   * The log's public key (`name+id+key`): when given, the event must also be covered by a checkpoint
   * signed with it (an inclusion proof is built and verified), not just present in the store.
   */
  publicKey?: string;
}

function refuse(source: string, digest: string, why: string): BulwarkError {
  return new BulwarkError('ERR_DATA_PROVENANCE', `${source} (${digest}): ${why}; refusing to train on it`, {
    details: { source, digest },
  });
}

/** Checks one batch: `digest` must be produced by a `dataset.protected` event of `log`. */
export async function checkProvenance(
  log: AuditLog,
  source: string,
  digest: string,
  o: ProvenanceOptions = {},
): Promise<ProvenanceRecord> {
  if (!/^sha256:[0-9a-f]{64}$/.test(digest))
    throw new BulwarkError(
      'ERR_INVALID_ARGUMENT',
      `digest: expected sha256:<64 hex digits>, got ${JSON.stringify(digest)}`,
    );
  const { size } = await log.head();
  const index = await log.store.producerOf(`dataset:${digest}`, size);
  if (index === undefined)
    throw refuse(source, digest, 'no dataset.protected event in the audit log produced this data');
  const [row] = await log.store.entries(index, index + 1);
  if (!row) throw refuse(source, digest, `audit entry #${index} is missing`);
  if (!leafHash(row.body).equals(row.leaf))
    throw refuse(source, digest, `audit entry #${index} does not match its leaf hash`);
  const entry = decodeEntry(row.body);
  if (!entry) throw refuse(source, digest, `audit entry #${index} does not decode`);
  if (entry.type !== 'dataset.protected')
    throw refuse(source, digest, `the log records it as ${entry.type}, not as a protected dataset`);
  const data = entry.data;
  if (data.datasetDigest !== digest)
    throw refuse(source, digest, `audit entry #${index} is for another dataset`);
  let verifiedInclusion = false;
  if (o.publicKey !== undefined) {
    const bundle = await log.prove(entry.id);
    const v = verifyInclusionBundle(bundle, o.publicKey, log.origin);
    if (v.entry.index !== index) throw refuse(source, digest, 'the inclusion proof is for another entry');
    verifiedInclusion = true;
  }
  return {
    source,
    digest,
    eventId: entry.id,
    index,
    time: entry.time,
    rows: data.rows,
    protectedFields: data.protectedFields,
    keyIds: data.keyIds,
    verifiedInclusion,
  };
}

/**
 * Checks every batch; the first unknown one refuses them all. A batch is a file (hashed here) or, when
 * the caller has already read it, its name and the digest of the bytes it read: pass that, since
 * hashing the path again may hash another file, swapped in after the read.
 */
export async function requireProvenance(
  log: AuditLog,
  batches: ReadonlyArray<string | { source: string; digest: string }>,
  o: ProvenanceOptions = {},
): Promise<ProvenanceRecord[]> {
  const out: ProvenanceRecord[] = [];
  for (const b of batches)
    out.push(
      typeof b === 'string'
        ? await checkProvenance(log, b, await fileDigest(b), o)
        : await checkProvenance(log, b.source, b.digest, o),
    );
  return out;
}
