/**
 * Byte layout of a protected model package (`.bwm`), format version 1 (big-endian):
 * ```
 * offset 0        header (16): magic "BULWARKM" | version u8 = 1 | flags u8 = 0 | reserved u16 = 0
 *                              | manifest length M u32
 * 16              manifest: M bytes of UTF-8 JSON (see manifest.ts), in the clear
 * 16+M            encrypted model: C bytes, a Bulwark encrypted stream (src/keys/stream.ts, "BULWARKE")
 * 16+M+C          signature: B bytes of UTF-8 JSON, a Sigstore bundle v0.3 with a DSSE envelope
 * 16+M+C+B        footer (16): encrypted length C u64 | signature length B u32 | magic "BWMS"
 * ```
 * The first 16+M+C bytes are the package *body*: the signed statement lists the body's SHA-256 as a
 * resource, so one pass over the file gives both the body digest and (continuing the same SHA-256)
 * the whole-file digest. The signature comes last so that protecting a model of any size is a single
 * streaming pass; a reader finds it from the fixed-size footer. An unsigned package has B = 0.
 *
 * Overhead over the ONNX bytes: 32 bytes of framing, the manifest (about 1-3 KB), the signature
 * (about 1.5 KB), and the encrypted stream's header (~430 bytes) plus 29 bytes per 1 MiB frame.
 */
import { BulwarkError } from '../core/index.js';

export const PACKAGE_MAGIC = Buffer.from('BULWARKM', 'ascii');
export const FOOTER_MAGIC = Buffer.from('BWMS', 'ascii');
export const PACKAGE_VERSION = 1;
export const HEADER_BYTES = 16;
export const FOOTER_BYTES = 16;
/** Upper bounds that keep a hostile file from making the reader allocate much before any check. */
export const MAX_MANIFEST_BYTES = 4 << 20;
export const MAX_SIGNATURE_BYTES = 1 << 20;
/** File extension of packages. */
export const PACKAGE_EXTENSION = '.bwm';

/** Where the parts of a package are. */
export interface PackageLayout {
  fileBytes: number;
  manifestOffset: number;
  manifestBytes: number;
  encryptedOffset: number;
  encryptedBytes: number;
  /** End of the body (= start of the signature). */
  bodyBytes: number;
  signatureOffset: number;
  signatureBytes: number;
}

export function encodeHeader(manifestBytes: number): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  PACKAGE_MAGIC.copy(h, 0);
  h[8] = PACKAGE_VERSION;
  h.writeUInt32BE(manifestBytes, 12);
  return h;
}

export function encodeFooter(encryptedBytes: number, signatureBytes: number): Buffer {
  const f = Buffer.alloc(FOOTER_BYTES);
  f.writeBigUInt64BE(BigInt(encryptedBytes), 0);
  f.writeUInt32BE(signatureBytes, 8);
  FOOTER_MAGIC.copy(f, 12);
  return f;
}

function invalid(where: string, what: string): BulwarkError {
  return new BulwarkError('ERR_PACKAGE_INVALID', `${where}: not a valid model package (${what})`, {
    details: { path: where },
  });
}

/** Checks the header and footer of a package of `fileBytes` bytes and returns where its parts are. */
export function parseLayout(
  header: Uint8Array,
  footer: Uint8Array,
  fileBytes: number,
  where: string,
): PackageLayout {
  const h = Buffer.from(header.buffer, header.byteOffset, header.byteLength);
  if (h.length < 8 || !h.subarray(0, 8).equals(PACKAGE_MAGIC)) {
    throw new BulwarkError('ERR_FORMAT_UNSUPPORTED', `${where} is not a Bulwark model package`, {
      details: { path: where },
    });
  }
  if (fileBytes < HEADER_BYTES + FOOTER_BYTES) throw invalid(where, 'truncated');
  if (h[8] !== PACKAGE_VERSION) {
    throw new BulwarkError(
      'ERR_FORMAT_VERSION',
      `${where}: model package format version ${h[8]} is not supported (this Bulwark reads ${PACKAGE_VERSION})`,
    );
  }
  if (h[9] !== 0 || h.readUInt16BE(10) !== 0) throw invalid(where, 'unknown flags');
  const manifestBytes = h.readUInt32BE(12);
  const f = Buffer.from(footer.buffer, footer.byteOffset, footer.byteLength);
  if (f.length !== FOOTER_BYTES || !f.subarray(12, 16).equals(FOOTER_MAGIC))
    throw invalid(where, 'no footer: truncated or not closed');
  const encrypted = f.readBigUInt64BE(0);
  const signatureBytes = f.readUInt32BE(8);
  if (manifestBytes === 0 || manifestBytes > MAX_MANIFEST_BYTES) throw invalid(where, 'manifest length');
  if (signatureBytes > MAX_SIGNATURE_BYTES) throw invalid(where, 'signature length');
  const total = BigInt(HEADER_BYTES + manifestBytes + signatureBytes + FOOTER_BYTES) + encrypted;
  if (total !== BigInt(fileBytes)) throw invalid(where, 'part lengths do not add up to the file size');
  const encryptedBytes = Number(encrypted);
  const encryptedOffset = HEADER_BYTES + manifestBytes;
  const bodyBytes = encryptedOffset + encryptedBytes;
  return {
    fileBytes,
    manifestOffset: HEADER_BYTES,
    manifestBytes,
    encryptedOffset,
    encryptedBytes,
    bodyBytes,
    signatureOffset: bodyBytes,
    signatureBytes,
  };
}
