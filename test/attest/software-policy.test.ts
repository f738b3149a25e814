import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  type AttestationVerifier,
  parsePolicy,
  productionPolicy,
  RESERVED_ATTESTATION_FORMATS,
  registerAttestationFormat,
  signSoftwareAttestation,
  verifyAttestation,
} from '../../src/attest/index.js';
import type { ErrorCode } from '../../src/core/index.js';

async function code(p: Promise<unknown>): Promise<ErrorCode | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return (e as { code: ErrorCode }).code;
  }
}

const T = new Date('2026-05-01T10:00:00Z');
const signer = generateKeyPairSync('ed25519');
const pinned = signer.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const statement = {
  moduleId: 'test-module',
  timestamp: T.getTime(),
  measurements: { model: new Uint8Array(48).fill(1), runtime: new Uint8Array(48).fill(2) },
  nonce: new Uint8Array(32).fill(5),
  publicKey: new Uint8Array(32).fill(6),
  userData: null,
};
const doc = () => signSoftwareAttestation(statement, signer.privateKey, signer.publicKey);

describe('software attestations', () => {
  it('verify under the pinned signer key, marked software', async () => {
    const c = await verifyAttestation('software', doc(), {
      at: T,
      roots: [pinned],
      nonce: statement.nonce,
      publicKey: statement.publicKey,
    });
    assert.equal(c.hardware, false);
    assert.equal(c.format, 'software');
    assert.equal(c.measurements['model'], '01'.repeat(48));
    assert.equal(c.nonceVerified, true);
    assert.equal(c.time?.getTime(), T.getTime());
  });

  it('refuse revocation lists rather than ignore them (a key, no certificate chain)', async () => {
    assert.equal(
      await code(verifyAttestation('software', doc(), { at: T, roots: [pinned], crls: ['x'] })),
      'ERR_INVALID_ARGUMENT',
    );
  });

  it('are refused by a policy that pins no measurement, unless it says allowAnyMeasurement', async () => {
    const verify = (extra: Record<string, unknown>) =>
      code(
        verifyAttestation('software', doc(), {
          at: T,
          roots: [pinned],
          policy: parsePolicy({ requireHardware: false, ...extra }),
        }),
      );
    assert.equal(await verify({}), 'ERR_ATTEST_MEASUREMENT');
    assert.equal(await verify({ measurements: {} }), 'ERR_ATTEST_MEASUREMENT');
    assert.equal(await verify({ allowAnyMeasurement: true }), 'ok');
    const claims = await verifyAttestation('software', doc(), { at: T, roots: [pinned] });
    const [name, value] = Object.entries(claims.measurements)[0] as [string, string];
    assert.equal(await verify({ measurements: { [name]: [value] } }), 'ok');
    assert.equal(
      await verify({ measurements: { [name]: ['00'.repeat(value.length / 2)] } }),
      'ERR_ATTEST_MEASUREMENT',
    );
  });

  it('are refused by any policy that requires hardware (the default)', async () => {
    assert.equal(
      await code(
        verifyAttestation('software', doc(), { at: T, roots: [pinned], policy: productionPolicy() }),
      ),
      'ERR_ATTEST_HARDWARE_REQUIRED',
    );
    assert.equal(
      await code(
        verifyAttestation('software', doc(), {
          at: T,
          roots: [pinned],
          policy: parsePolicy({ requireHardware: false, allowAnyMeasurement: true }),
        }),
      ),
      'ok',
    );
  });

  it('need a pinned key; another key is another root; a changed byte breaks the signature', async () => {
    assert.equal(await code(verifyAttestation('software', doc(), { at: T })), 'ERR_ATTEST_UNTRUSTED_ROOT');
    const other = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    assert.equal(
      await code(verifyAttestation('software', doc(), { at: T, roots: [other] })),
      'ERR_ATTEST_UNTRUSTED_ROOT',
    );
    const d = doc();
    const off = Buffer.from(d).indexOf(Buffer.from('test-module'));
    d[off] = 0x54; // 't' -> 'T'
    assert.equal(
      await code(verifyAttestation('software', d, { at: T, roots: [pinned] })),
      'ERR_ATTEST_SIGNATURE',
    );
  });

  it('wrong nonce, wrong key binding, stale', async () => {
    assert.equal(
      await code(verifyAttestation('software', doc(), { at: T, roots: [pinned], nonce: new Uint8Array(32) })),
      'ERR_ATTEST_NONCE',
    );
    assert.equal(
      await code(
        verifyAttestation('software', doc(), { at: T, roots: [pinned], publicKey: new Uint8Array(32) }),
      ),
      'ERR_ATTEST_BINDING',
    );
    const later = new Date(T.getTime() + 301_000);
    assert.equal(
      await code(
        verifyAttestation('software', doc(), {
          at: later,
          roots: [pinned],
          policy: parsePolicy({ requireHardware: false, allowAnyMeasurement: true }),
        }),
      ),
      'ERR_ATTEST_STALE',
    );
    const earlier = new Date(T.getTime() - 120_000);
    assert.equal(
      await code(
        verifyAttestation('software', doc(), {
          at: earlier,
          roots: [pinned],
          policy: parsePolicy({ requireHardware: false, allowAnyMeasurement: true }),
        }),
      ),
      'ERR_ATTEST_STALE',
    );
  });
});

describe('policies', () => {
  it('defaults are the production ones', () => {
    const p = parsePolicy({});
    assert.equal(p.requireHardware, true);
    assert.equal(p.allowDebug, false);
    assert.equal(p.maxAgeSeconds, 300);
    assert.deepEqual(p.measurements, {});
    assert.equal(p.allowAnyMeasurement, false);
  });

  it('refuse unknown keys and bad values with ERR_ATTEST_POLICY_INVALID', () => {
    for (const bad of [
      [],
      'x',
      { alowDebug: true },
      { requireHardware: 'yes' },
      { measurements: { PCR0: ['xyz'] } },
      { maxAgeSeconds: -1 },
      { minTcb: { snp: 300 } },
      { formats: [] },
    ]) {
      assert.throws(() => parsePolicy(bad), { code: 'ERR_ATTEST_POLICY_INVALID' }, JSON.stringify(bad));
    }
    assert.deepEqual(parsePolicy({ measurements: { PCR0: 'AB' } }).measurements, { PCR0: ['ab'] });
  });

  it('a policy can restrict formats', async () => {
    const d = signSoftwareAttestation(statement, signer.privateKey, signer.publicKey);
    assert.equal(
      await code(
        verifyAttestation('software', d, {
          at: T,
          roots: [pinned],
          policy: parsePolicy({ formats: ['nitro'] }),
        }),
      ),
      'ERR_ATTEST_FORMAT_UNKNOWN',
    );
  });
});

describe('the registry', () => {
  it('takes a new format once, and names the reserved TDX and NVIDIA slots', async () => {
    assert.ok('tdx' in RESERVED_ATTESTATION_FORMATS && 'nvidia-gpu' in RESERVED_ATTESTATION_FORMATS);
    const v: AttestationVerifier = {
      format: 'test-echo',
      description: 'test',
      hardware: false,
      verify: async (d) => ({
        format: 'test-echo',
        hardware: false,
        measurements: { m: Buffer.from(d).toString('hex') },
        nonce: null,
        publicKey: null,
        userData: null,
        debug: false,
        time: null,
        nonceVerified: false,
        trustAnchor: '',
        details: {},
      }),
    };
    registerAttestationFormat(v);
    assert.equal((await verifyAttestation('test-echo', Uint8Array.of(1, 2))).measurements['m'], '0102');
    assert.throws(() => registerAttestationFormat(v), { code: 'ERR_INVALID_ARGUMENT' });
    assert.throws(() => registerAttestationFormat({ ...v, format: 'Bad Name' }), {
      code: 'ERR_INVALID_ARGUMENT',
    });
  });
});
