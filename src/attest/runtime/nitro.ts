/**
 * The Nitro Enclaves runtime adapter: obtains attestation documents from the Nitro Security Module
 * (NSM), the enclave's only attestation interface. UNTESTED ON HARDWARE — no Nitro enclave exists on
 * the machines Bulwark is built on; the code follows the NSM API contract
 * (github.com/aws/aws-nitro-enclaves-nsm-api, `Request::Attestation` / `Response::Attestation`) and
 * its message encoding is tested, the device round trip is not.
 *
 * The NSM is reached through `/dev/nsm` with one ioctl (`NSM_IOCTL_REQUEST`, `_IOWR(0x0A, 0, ...)`)
 * whose request and response are CBOR (serde externally tagged enums):
 *   request  {"Attestation": {"user_data": bstr / null, "nonce": bstr / null, "public_key": bstr / null}}
 *   response {"Attestation": {"document": bstr (or an array of uint8)}}   or   {"Error": "<ErrorCode>"}
 * Node cannot issue an ioctl without a native addon, so {@link NsmDevice} is an interface and
 * {@link nsmHelperDevice} runs a small helper inside the enclave image (for instance a build of the
 * NSM API crate's `nsm_process_request`) that reads one CBOR request on stdin, performs the ioctl, and
 * writes the CBOR response on stdout. Limits (NSM API): user_data and nonce up to 512 bytes,
 * public_key up to 1024.
 */
import { execFile } from 'node:child_process';
import { encode } from 'cbor2';
import { BulwarkError } from '../../core/index.js';
import { decodeCbor, plain } from '../cose.js';
import type { AttestationBinding, Attester } from '../session/server.js';

/** One NSM request/response round trip (CBOR in, CBOR out). */
export interface NsmDevice {
  request(cbor: Uint8Array): Promise<Uint8Array>;
}

const LIMITS = { user_data: 512, nonce: 512, public_key: 1024 } as const;

/** Encodes `Request::Attestation`. */
export function encodeNsmAttestationRequest(b: {
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
  publicKey: Uint8Array | null;
}): Uint8Array {
  const fields: [keyof typeof LIMITS, Uint8Array | null][] = [
    ['user_data', b.userData],
    ['nonce', b.nonce],
    ['public_key', b.publicKey],
  ];
  for (const [k, v] of fields) {
    if (v && v.length > LIMITS[k]) {
      throw new BulwarkError(
        'ERR_INVALID_ARGUMENT',
        `${k}: the NSM accepts at most ${LIMITS[k]} bytes, got ${v.length}`,
        { details: { parameter: k } },
      );
    }
  }
  return encode(new Map([['Attestation', new Map(fields.map(([k, v]) => [k, v ? plain(v) : null]))]]));
}

/** Decodes `Response::Attestation` (or an NSM error) into the attestation document. */
export function decodeNsmAttestationResponse(bytes: Uint8Array): Uint8Array {
  let m: unknown;
  try {
    m = decodeCbor(bytes, 'NSM response');
  } catch (e) {
    throw new BulwarkError('ERR_ENCLAVE_UNAVAILABLE', 'NSM: the response is not CBOR', { cause: e });
  }
  if (m instanceof Map && typeof m.get('Error') === 'string') {
    throw new BulwarkError(
      'ERR_ENCLAVE_UNAVAILABLE',
      `NSM refused the attestation request: ${m.get('Error') as string}`,
    );
  }
  const att = m instanceof Map ? m.get('Attestation') : undefined;
  const doc = att instanceof Map ? att.get('document') : undefined;
  if (doc instanceof Uint8Array && doc.length > 0) return doc;
  if (Array.isArray(doc) && doc.length > 0 && doc.every((x) => Number.isInteger(x) && x >= 0 && x <= 255))
    return Uint8Array.from(doc as number[]);
  throw new BulwarkError('ERR_ENCLAVE_UNAVAILABLE', 'NSM: the response holds no attestation document');
}

/** An NSM device reached through a helper executable (stdin: CBOR request, stdout: CBOR response). */
export function nsmHelperDevice(helperPath = '/usr/local/bin/bulwark-nsm', timeoutMs = 5000): NsmDevice {
  return {
    request: (cbor) =>
      new Promise((resolve, reject) => {
        const child = execFile(
          helperPath,
          [],
          { encoding: 'buffer', timeout: timeoutMs, maxBuffer: 64 * 1024 },
          (err, stdout) => {
            if (err)
              reject(
                new BulwarkError(
                  'ERR_ENCLAVE_UNAVAILABLE',
                  `NSM helper ${helperPath} failed: ${err.message}`,
                  { cause: err },
                ),
              );
            else resolve(new Uint8Array(stdout));
          },
        );
        child.stdin?.end(Buffer.from(cbor));
      }),
  };
}

/**
 * An {@link Attester} for `AttestedSessionServer` inside a Nitro enclave: every attestation binds the
 * HPKE public key (`public_key`), the client's nonce (`nonce`) and the session binding digest
 * (`user_data`). The document is checked to parse as COSE before it is returned.
 */
export class NitroAttester implements Attester {
  readonly format = 'nitro';
  readonly #device: NsmDevice;

  constructor(device: NsmDevice = nsmHelperDevice()) {
    this.#device = device;
  }

  async attest(b: AttestationBinding): Promise<{ document: Uint8Array }> {
    const res = await this.#device.request(
      encodeNsmAttestationRequest({ userData: b.userData, nonce: b.nonce, publicKey: b.publicKey }),
    );
    return { document: decodeNsmAttestationResponse(res) };
  }
}
