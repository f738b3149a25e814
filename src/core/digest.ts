/**
 * Content digests in the one form every Bulwark record uses: `sha256:` and 64 lowercase hex digits
 * (the audit log's `digestSchema`, model manifests, lineage references).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { fsError } from './fs.js';

/** `sha256:<hex>` of bytes or a UTF-8 string. */
export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** `sha256:<hex>` of a file's bytes, streamed (files may be larger than memory). */
export async function fileDigest(path: string): Promise<string> {
  const h = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  } catch (e) {
    throw fsError(e, path, 'cannot read the file to hash it');
  }
  return `sha256:${h.digest('hex')}`;
}
