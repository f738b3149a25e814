/**
 * Content digests in the one form every Bulwark record uses: `sha256:` and 64 lowercase hex digits
 * (the audit log's `digestSchema`, model manifests, lineage references).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { fsError, requireFile } from './fs.js';

/** `sha256:<hex>` of bytes or a UTF-8 string. */
export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/**
 * `sha256:<hex>` of a file's bytes, streamed (files may be larger than memory). With `what`, the path
 * must first be a regular file (`requireFile`, naming `what`); `action` begins a read error's message.
 */
export async function fileDigest(
  path: string,
  what?: string,
  action = 'cannot read the file to hash it',
): Promise<string> {
  if (what !== undefined) await requireFile(path, what);
  const h = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  } catch (e) {
    throw fsError(e, path, action);
  }
  return `sha256:${h.digest('hex')}`;
}
