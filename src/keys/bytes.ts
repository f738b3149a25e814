import { timingSafeEqual } from 'node:crypto';

/** Small byte helpers shared by the key and file formats (big-endian, length-prefixed encodings). */

const encoder = new TextEncoder();

/** UTF-8 bytes of a string. */
export function utf8(s: string): Buffer {
  return Buffer.from(encoder.encode(s));
}

/** Big-endian 32-bit unsigned integer. */
export function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

/**
 * An unambiguous encoding of a list of byte strings (each prefixed by its 32-bit length), so that no
 * two different lists encode to the same bytes: associated data built from several fields must not let
 * `("ab", "c")` collide with `("a", "bc")`.
 */
export function encodeParts(parts: readonly (Uint8Array | string)[]): Buffer {
  const bufs: Buffer[] = [];
  for (const p of parts) {
    const b = typeof p === 'string' ? utf8(p) : Buffer.from(p.buffer, p.byteOffset, p.byteLength);
    bufs.push(u32(b.length), b);
  }
  return Buffer.concat(bufs);
}

/** Constant-time equality of two byte strings (false when the lengths differ). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Base64url without padding (RFC 4648 §5). */
export function b64u(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/** Standard base64 (for JSON documents). */
export function b64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

/** Decodes strict base64 or base64url text; undefined when it is not. */
export function fromB64(s: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(s)) return undefined;
  return Buffer.from(s, s.includes('-') || s.includes('_') ? 'base64url' : 'base64');
}

/** Overwrites a secret buffer with zeros (best effort: the GC may have copied it). */
export function wipe(b: Uint8Array | undefined): void {
  b?.fill(0);
}
