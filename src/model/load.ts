/**
 * Reading, verifying and loading protected model packages.
 *
 * Order of checks (each failure has its own code, nothing is decrypted before the first four pass):
 * 1. layout (ERR_FORMAT_UNSUPPORTED, ERR_FORMAT_VERSION, ERR_PACKAGE_INVALID);
 * 2. a signature is present (ERR_PACKAGE_UNSIGNED);
 * 3. the signer's key is in the trust policy (ERR_SIGNER_UNTRUSTED) and the DSSE signature verifies
 *    under it (ERR_SIGNATURE_INVALID);
 * 4. the statement's digests equal the manifest's and the body's (ERR_DIGEST_MISMATCH), and the
 *    signer is trusted for the model name the manifest states (ERR_SIGNER_UNTRUSTED);
 * 5. the data key unwraps with the keyring (ERR_KEY_NOT_FOUND, ERR_KEY_UNWRAP, ...) and every frame
 *    authenticates (ERR_CIPHERTEXT_TAMPERED, ...), in memory only;
 * 6. the plaintext's digest equals the signed `model.onnx` digest (ERR_DIGEST_MISMATCH), and the
 *    detector bundle after it (manifest version 2) the signed `detectors.json` digest;
 * 7. ONNX Runtime opens the model from the buffer; the plaintext buffer is then overwritten.
 *
 * The file is read once: the SHA-256 of the body is taken while reading (overlapping the reads), and
 * the whole-file digest continues the same hash over the signature and footer.
 */

import { constants } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { BulwarkError, requireFile, withFileRead } from '../core/index.js';
import { decryptStream, type Keyring } from '../keys/index.js';
import { OnnxRuntimeModel } from '../ml/index.js';
import { FOOTER_BYTES, HEADER_BYTES, type PackageLayout, parseLayout } from './format.js';
import { type ModelManifest, parseManifest } from './manifest.js';
import type { OnnxMemoryOptions } from './onnx-memory.js';
import { RESOURCE_BODY, RESOURCE_DETECTORS, RESOURCE_MANIFEST, RESOURCE_MODEL } from './protect.js';
import {
  IN_TOTO_PAYLOAD_TYPE,
  type ModelStatement,
  pae,
  parseSignature,
  parseStatement,
  verifyBytes,
} from './sign.js';
import { modelPatternMatches, type TrustedSigner, type TrustPolicy } from './trust.js';

/** A model loaded from a verified package. */
export interface LoadedModel {
  manifest: ModelManifest;
  model: OnnxRuntimeModel;
  signer: { keyId: string; algorithm: string };
  /** `sha256:<hex>` of the whole package file (the form `protectModel` and the audit log use). */
  packageDigest: string;
  /**
   * The package's detector bundle (parsed JSON, verified against its signed digest; load it with
   * src/robust `loadDetectorBundle`), or null when the package carries none.
   */
  detectors: unknown;
}

export interface LoadOptions {
  keyring: Keyring;
  trust: TrustPolicy;
  /** ONNX Runtime intra-op threads (default 1). */
  threads?: number;
  /**
   * Also check the decrypted model against the signed `model.onnx` digest (default true). The check
   * is redundant with the signed digest of the ciphertext and the key-committing AEAD (the plaintext
   * of a signed ciphertext is fixed); it guards against a defect, at the cost of one SHA-256 pass
   * over the model, on the calling thread, in frame order, while the thread pool decrypts the next
   * frames (see `decryptThreads`).
   */
  checkModelDigest?: boolean;
  /**
   * Threads that authenticate and decrypt the model's frames (default 1: on the calling thread; the
   * pool measured slower on a 2-vCPU machine, see src/keys/frame-pipeline.ts). With more, frames are
   * opened in parallel; the plaintext digest
   * is taken in frame order on the calling thread, and the session is created only after both.
   */
  decryptThreads?: number;
  /**
   * The memory bound the model is opened under (`onnxMemoryBound`: most rows per run, most bytes its
   * tensors may hold); defaults as there. A model past it is refused before ONNX Runtime sees it.
   */
  memory?: OnnxMemoryOptions;
  /** How refusals of the model's graph name it (`OnnxRuntimeModel.create`; default "model"). */
  describedAs?: string;
}

/** A package read into memory, with its digests. */
interface PackageBytes {
  path: string;
  bytes: Buffer;
  layout: PackageLayout;
  /** hex digests */
  bodyDigest: string;
  fileDigest: string;
}

const CHUNK = 8 << 20;

/** Opens a package, reads its layout (header and footer) and runs `fn` on it; the file is closed after. */
async function withLayout<T>(
  path: string,
  fn: (fh: FileHandle, size: number, layout: PackageLayout) => Promise<T>,
): Promise<T> {
  await requireFile(path, 'model package');
  return withFileRead(path, async (fh) => {
    const size = (await fh.stat()).size;
    const head = Buffer.alloc(Math.min(HEADER_BYTES, size));
    await fh.read(head, 0, head.length, 0);
    const foot = Buffer.alloc(size >= FOOTER_BYTES ? FOOTER_BYTES : 0);
    if (foot.length > 0) await fh.read(foot, 0, FOOTER_BYTES, size - FOOTER_BYTES);
    return fn(fh, size, parseLayout(head, foot, size, path));
  });
}

/** Reads a whole package, hashing the body and the file while reading. */
async function readPackage(path: string): Promise<PackageBytes> {
  return withLayout(path, async (fh, size, layout) => {
    if (size > constants.MAX_LENGTH)
      throw new BulwarkError(
        'ERR_PACKAGE_INVALID',
        `${path}: ${size} bytes is more than one in-memory buffer holds (${constants.MAX_LENGTH})`,
      );
    // Not shared memory (which decryption workers could read in place): ONNX Runtime takes the model
    // only from an ArrayBuffer, so the in-place plaintext must live in one; frames are copied to the
    // workers instead (one memcpy per frame).
    const bytes = Buffer.allocUnsafe(size);
    const hash = createHash('sha256');
    let bodyDigest = '';
    const readAt = async (off: number): Promise<number> => {
      const len = Math.min(CHUNK, size - off);
      let got = 0;
      while (got < len) {
        const r = await fh.read(bytes, off + got, len - got, off + got);
        if (r.bytesRead === 0)
          throw new BulwarkError('ERR_PACKAGE_INVALID', `${path}: the file shrank while being read`);
        got += r.bytesRead;
      }
      return len;
    };
    // Overlap: the next read runs on the thread pool while this thread hashes the current chunk.
    let off = 0;
    let pending = size > 0 ? readAt(0) : Promise.resolve(0);
    while (off < size) {
      const len = await pending;
      const next = off + len;
      pending = next < size ? readAt(next) : Promise.resolve(0);
      const chunk = bytes.subarray(off, next);
      if (off < layout.bodyBytes && next >= layout.bodyBytes) {
        const cut = layout.bodyBytes - off;
        hash.update(chunk.subarray(0, cut));
        bodyDigest = hash.copy().digest('hex');
        hash.update(chunk.subarray(cut));
      } else hash.update(chunk);
      off = next;
    }
    await pending;
    return { path, bytes, layout, bodyDigest, fileDigest: hash.digest('hex') };
  });
}

function manifestOf(p: PackageBytes): ModelManifest {
  const { manifestOffset, manifestBytes } = p.layout;
  let raw: unknown;
  try {
    raw = JSON.parse(p.bytes.subarray(manifestOffset, manifestOffset + manifestBytes).toString('utf8'));
  } catch {
    throw new BulwarkError('ERR_PACKAGE_INVALID', `${p.path}: the manifest is not JSON`);
  }
  return parseManifest(raw, p.path);
}

function signatureText(p: PackageBytes): string {
  const { signatureOffset, signatureBytes } = p.layout;
  if (signatureBytes === 0)
    throw new BulwarkError('ERR_PACKAGE_UNSIGNED', `${p.path}: the package is not signed: refusing it`);
  return p.bytes.subarray(signatureOffset, signatureOffset + signatureBytes).toString('utf8');
}

function mismatch(path: string, what: string): BulwarkError {
  return new BulwarkError(
    'ERR_DIGEST_MISMATCH',
    `${path}: ${what} does not match the signed digest: the package was altered`,
    {
      details: { path, resource: what },
    },
  );
}

/** The result of verifying a package's signature and digests. */
export interface VerifiedPackage {
  manifest: ModelManifest;
  statement: ModelStatement;
  signer: { keyId: string; algorithm: string; name: string };
  /** `sha256:<hex>` of the whole package file. */
  packageDigest: string;
}

/** Steps 2-4: signature, trust, digests. */
function verifyRead(p: PackageBytes, trust: TrustPolicy): VerifiedPackage {
  const sig = parseSignature(signatureText(p), p.path);
  const candidates: TrustedSigner[] =
    sig.keyHint !== '' ? trust.signers.filter((s) => s.keyId === sig.keyHint) : [...trust.signers];
  if (candidates.length === 0) {
    throw new BulwarkError(
      'ERR_SIGNER_UNTRUSTED',
      `${p.path}: signed by key ${sig.keyHint.slice(0, 16)}…, which the trust policy ${trust.source} does not list`,
      { details: { keyId: sig.keyHint } },
    );
  }
  const data = pae(IN_TOTO_PAYLOAD_TYPE, sig.payload);
  let signer: TrustedSigner | undefined;
  for (const c of candidates) {
    if (sig.signatures.some((s) => verifyBytes(c.publicKey, c.algorithm, data, s.sig))) {
      signer = c;
      break;
    }
  }
  if (!signer) {
    throw new BulwarkError(
      'ERR_SIGNATURE_INVALID',
      `${p.path}: the signature does not verify under the trusted key it names: the package was altered or re-signed`,
    );
  }
  const statement = parseStatement(sig.payload, p.path);
  const res = new Map(statement.predicate.resources.map((r) => [r.name, r.digest]));
  for (const n of [RESOURCE_MANIFEST, RESOURCE_MODEL, RESOURCE_BODY]) {
    if (!res.has(n))
      throw new BulwarkError(
        'ERR_SIGNATURE_INVALID',
        `${p.path}: the signed statement lists no "${n}" resource`,
      );
  }
  const { manifestOffset, manifestBytes } = p.layout;
  const md = createHash('sha256')
    .update(p.bytes.subarray(manifestOffset, manifestOffset + manifestBytes))
    .digest('hex');
  if (md !== res.get(RESOURCE_MANIFEST)) throw mismatch(p.path, 'the manifest');
  if (p.bodyDigest !== res.get(RESOURCE_BODY)) throw mismatch(p.path, 'the encrypted model');
  const manifest = manifestOf(p);
  if (manifest.onnx.sha256 !== res.get(RESOURCE_MODEL)) throw mismatch(p.path, "the manifest's model digest");
  if (statement.subject[0].name !== manifest.model.name) throw mismatch(p.path, 'the model name');
  // Both ways: a bundle the statement does not sign, or a signed bundle the manifest no longer lists.
  if ((manifest.detectors?.sha256 ?? null) !== (res.get(RESOURCE_DETECTORS) ?? null))
    throw mismatch(p.path, "the manifest's detector digest");
  if (!signer.models.some((m) => modelPatternMatches(m, manifest.model.name))) {
    throw new BulwarkError(
      'ERR_SIGNER_UNTRUSTED',
      `${p.path}: signer "${signer.name}" is not trusted for model "${manifest.model.name}" (trusted for: ${signer.models.join(', ')})`,
      { details: { keyId: signer.keyId, model: manifest.model.name } },
    );
  }
  return {
    manifest,
    statement,
    signer: { keyId: signer.keyId, algorithm: signer.algorithm, name: signer.name },
    packageDigest: `sha256:${p.fileDigest}`,
  };
}

/** The verified plaintext: the model (a view into the package buffer) and the detector bundle. */
interface Plaintext {
  model: Buffer;
  /** The detector bundle's parsed JSON, or null (its bytes are wiped once parsed). */
  detectors: unknown;
}

/** Steps 5-6: decrypts the model (and its detectors) in memory and checks digests. The caller wipes `model`. */
async function decryptModel(
  p: PackageBytes,
  v: VerifiedPackage,
  keyring: Keyring,
  checkDigest: boolean,
  threads: number | undefined,
): Promise<Plaintext> {
  const { encryptedOffset, encryptedBytes } = p.layout;
  const modelBytes = v.manifest.onnx.bytes;
  const want = modelBytes + (v.manifest.detectors?.bytes ?? 0);
  if (want > encryptedBytes) throw mismatch(p.path, 'the model length');
  // Decrypt in place, into the ciphertext's own bytes: frame i's plaintext goes to [i*F, (i+1)*F) of
  // the encrypted region, which decryptStream has already consumed (the stream header and i frame
  // overheads precede frame i, so frame i's ciphertext starts after that range). No second model-sized
  // buffer: half the memory and one page-faulting allocation and copy less. The signed plaintext digest
  // (checked by default) would catch any overlap error. With frames on the thread pool the frames in flight are
  // always later than the one being copied, and frame i's plaintext range ends before frame i+1's
  // ciphertext starts, so in-order copying never overwrites ciphertext a worker has still to read.
  const plain = p.bytes.subarray(encryptedOffset, encryptedOffset + want);
  // The plaintext digests are computed here, in frame order, as frames arrive (SHA-256 is sequential):
  // the model's (by default) over its bytes, the detector bundle's (always: it is small) over the rest.
  const modelHash = checkDigest ? createHash('sha256') : null;
  const detectorHash = createHash('sha256');
  let off = 0;
  try {
    for await (const part of decryptStream(
      [p.bytes.subarray(encryptedOffset, encryptedOffset + encryptedBytes)],
      keyring,
      p.path,
      // reuseOutput: each frame's plaintext buffer is overwritten and reused once copied and hashed.
      { ...(threads !== undefined ? { threads } : {}), reuseOutput: true },
    )) {
      if (off + part.length > want) throw mismatch(p.path, 'the decrypted model length');
      part.copy(plain, off);
      const cut = Math.max(0, Math.min(part.length, modelBytes - off));
      modelHash?.update(part.subarray(0, cut));
      if (cut < part.length) detectorHash.update(part.subarray(cut));
      off += part.length;
    }
    if (off !== want) throw mismatch(p.path, 'the decrypted model length');
    const signed = (name: string) => v.statement.predicate.resources.find((r) => r.name === name)?.digest;
    if (modelHash && modelHash.digest('hex') !== signed(RESOURCE_MODEL))
      throw mismatch(p.path, 'the decrypted model');
    let detectors: unknown = null;
    if (v.manifest.detectors) {
      if (detectorHash.digest('hex') !== signed(RESOURCE_DETECTORS))
        throw mismatch(p.path, 'the decrypted detector bundle');
      const bundle = plain.subarray(modelBytes);
      try {
        detectors = JSON.parse(bundle.toString('utf8'));
      } catch {
        // Signed and authenticated, yet not JSON: the signer packaged a broken bundle.
        throw new BulwarkError('ERR_DETECTOR_STATE', `${p.path}: the detector bundle is not JSON`);
      } finally {
        bundle.fill(0);
      }
    }
    return { model: plain.subarray(0, modelBytes), detectors };
  } catch (e) {
    plain.fill(0);
    throw e;
  }
}

/**
 * Steps 1-6, the one verification path of every keyed read (`loadProtectedModel`,
 * `decryptProtectedModel`): read, signature, trust, digests, key unwrap, in-memory decryption and the
 * plaintext digest. Returns the plaintext as a view into the package buffer; the caller wipes it.
 */
async function openVerified(
  path: string,
  trust: TrustPolicy,
  keyring: Keyring,
  checkDigest: boolean,
  threads?: number,
): Promise<{ v: VerifiedPackage; plain: Buffer; detectors: unknown }> {
  const p = await readPackage(path);
  const v = verifyRead(p, trust);
  const { model, detectors } = await decryptModel(p, v, keyring, checkDigest, threads);
  return { v, plain: model, detectors };
}

/**
 * Verifies a package: signature, trust and digests; with a keyring also decrypts it in memory and
 * checks the plaintext's digest (the plaintext is wiped before returning). Throws on any failure.
 */
export async function verifyPackage(
  path: string,
  options: { trust: TrustPolicy; keyring?: Keyring },
): Promise<VerifiedPackage & { decrypted: boolean }> {
  if (options.keyring) {
    const { v, plain } = await openVerified(path, options.trust, options.keyring, true);
    plain.fill(0);
    return { ...v, decrypted: true };
  }
  const p = await readPackage(path);
  return { ...verifyRead(p, options.trust), decrypted: false };
}

/**
 * Verifies a package and opens its model in ONNX Runtime from memory: the plaintext never touches
 * disk and is overwritten once the session holds the model.
 *
 * @example
 * ```ts
 * const trust = await loadTrustPolicy('trust.yaml');
 * const { model, manifest } = await loadProtectedModel('fraud.bwm', { keyring, trust });
 * ```
 */
export async function loadProtectedModel(path: string, options: LoadOptions): Promise<LoadedModel> {
  const { v, plain, detectors } = await openVerified(
    path,
    options.trust,
    options.keyring,
    options.checkModelDigest ?? true,
    options.decryptThreads,
  );
  try {
    const model = await OnnxRuntimeModel.create(plain, {
      ...(options.threads !== undefined ? { threads: options.threads } : {}),
      ...(options.memory !== undefined ? { memory: options.memory } : {}),
      ...(options.describedAs !== undefined ? { describedAs: options.describedAs } : {}),
    });
    return {
      manifest: v.manifest,
      model,
      signer: { keyId: v.signer.keyId, algorithm: v.signer.algorithm },
      packageDigest: v.packageDigest,
      detectors,
    };
  } finally {
    plain.fill(0);
  }
}

/** A package's verified plaintext model, in memory, for fine-tuning (see {@link decryptProtectedModel}). */
export interface DecryptedModel {
  manifest: ModelManifest;
  /** The verified plaintext ONNX bytes (a view into the package buffer, never written to disk). */
  onnx: Buffer;
  signer: { keyId: string; algorithm: string; name: string };
  /** `sha256:<hex>` of the whole package file. */
  packageDigest: string;
  /** Overwrites the plaintext with zeros; call it (in a `finally`) as soon as the bytes are used. */
  wipe(): void;
}

/**
 * Verifies a package exactly as {@link loadProtectedModel} does (same code path, same refusal codes,
 * the plaintext digest always checked) and hands the verified plaintext ONNX bytes to the caller, in
 * memory, instead of opening ONNX Runtime: continuous learning needs the weights to fine-tune them
 * (`bulwark train --from MODEL.bwm`). It gives no new capability: whoever holds the keyring and its
 * secret can already decrypt the package. Callers must keep the bytes in memory (never write them),
 * and call `wipe()` when done; the result of fine-tuning goes back into a package with `protectModel`.
 */
export async function decryptProtectedModel(
  path: string,
  options: { keyring: Keyring; trust: TrustPolicy },
): Promise<DecryptedModel> {
  const { v, plain } = await openVerified(path, options.trust, options.keyring, true);
  return {
    manifest: v.manifest,
    onnx: plain,
    signer: v.signer,
    packageDigest: v.packageDigest,
    wipe: () => {
      plain.fill(0);
    },
  };
}

/** What can be read from a package without any key: manifest, claimed signer, layout. Nothing verified. */
export interface PackageInspection {
  manifest: ModelManifest;
  layout: PackageLayout;
  /** Key hint of the signature, or null when unsigned. */
  signerKeyId: string | null;
  /** The statement as the package carries it (unverified), or null when unsigned. */
  statement: ModelStatement | null;
}

/** Reads a package's parts without a key and without verifying anything (`bulwark model inspect`). */
export async function inspectPackage(path: string): Promise<PackageInspection> {
  return withLayout(path, async (fh, _size, layout) => {
    const m = Buffer.alloc(layout.manifestBytes);
    await fh.read(m, 0, m.length, layout.manifestOffset);
    let raw: unknown;
    try {
      raw = JSON.parse(m.toString('utf8'));
    } catch {
      throw new BulwarkError('ERR_PACKAGE_INVALID', `${path}: the manifest is not JSON`);
    }
    const manifest = parseManifest(raw, path);
    let signerKeyId: string | null = null;
    let statement: ModelStatement | null = null;
    if (layout.signatureBytes > 0) {
      const s = Buffer.alloc(layout.signatureBytes);
      await fh.read(s, 0, s.length, layout.signatureOffset);
      try {
        const sig = parseSignature(s.toString('utf8'), path);
        signerKeyId = sig.keyHint;
        statement = parseStatement(sig.payload, path);
      } catch (e) {
        // An unreadable or empty signature is shown as none; verification refuses such a package.
        if (!(e instanceof BulwarkError)) throw e;
      }
    }
    return { manifest, layout, signerKeyId, statement };
  });
}

/** The manifest of a package, read without a key (not verified: use verifyPackage for that). */
export async function readManifest(path: string): Promise<ModelManifest> {
  return (await inspectPackage(path)).manifest;
}
