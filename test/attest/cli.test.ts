import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { signSoftwareAttestation } from '../../src/attest/index.js';
import { runBulwark, runBulwarkInProcess } from '../helpers/cli.js';
import { NITRO_DOC, noSamples, SNP_ASK_ARK, SNP_REPORT, SNP_VCEK } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-attest-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const errOf = (stderr: string) => /bulwark: (ERR_[A-Z_]+)/.exec(stderr)?.[1];
/** `attest verify` of the real Nitro document at its own time; the options given follow. */
const atDocument = ['attest', 'verify', NITRO_DOC, '--format', 'nitro', '--at', 'document'];

describe('bulwark attest verify', { skip: noSamples }, () => {
  // The real document's PCR0, read without a policy: the pin the policy checks below.
  const pcr0 = (): string => {
    const r = runBulwark(['--json', ...atDocument, '--no-policy']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      freshness: string;
      claims: { measurements: Record<string, string> };
    };
    assert.match(out.freshness, /^not evaluated \(--no-policy\)/);
    return out.claims.measurements['PCR0'] as string;
  };

  it('verifies the real Nitro document at its own time with its PCR0 pinned (--json claims)', () => {
    const r = runBulwark(['--json', ...atDocument, '--measurement', `PCR0=${pcr0()}`]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      verified: boolean;
      freshness: string;
      claims: { format: string; hardware: boolean; trustAnchor: string; time: string };
    };
    assert.equal(out.verified, true);
    assert.equal(out.claims.hardware, true);
    assert.match(out.claims.trustAnchor, /^64:1A:03:21:.*:BB:5B$/);
    assert.equal(out.claims.time, '2022-07-06T14:18:22.484Z');
    // Checked at its own time, the document is 0 s old: that proves nothing, and the output says so.
    assert.match(out.freshness, /^not evaluated \(--at document/);
  });

  it("refuses a policy that pins no measurement: any genuine enclave, anyone's, would pass", async () => {
    const r = runBulwark(atDocument);
    assert.equal(r.code, 5);
    assert.equal(errOf(r.stderr), 'ERR_ATTEST_MEASUREMENT');
    assert.match(r.stderr, /pins no measurement.*PCR0/);
    const any = join(dir, 'any.yaml');
    writeFileSync(any, 'allowAnyMeasurement: true\n');
    const ok = runBulwark([...atDocument, '--policy', any]);
    assert.equal(ok.code, 0, ok.stderr);
    const wrong = runBulwark([...atDocument, '--measurement', `PCR0=${'00'.repeat(48)}`]);
    assert.equal(errOf(wrong.stderr), 'ERR_ATTEST_MEASUREMENT');
    const usage = await runBulwarkInProcess([
      'attest',
      'verify',
      NITRO_DOC,
      '--format',
      'nitro',
      '--no-policy',
      '--measurement',
      'PCR0=00',
    ]);
    assert.equal(usage.code, 2);
    assert.equal(errOf(usage.stderr), 'ERR_USAGE');
    assert.equal(
      runBulwark(['attest', 'verify', NITRO_DOC, '--format', 'nitro', '--measurement', 'PCR0']).code,
      2,
    );
  });

  it('base64 documents are accepted; today the leaf has expired (exit 5)', () => {
    const b64 = join(dir, 'doc.b64');
    writeFileSync(b64, readFileSync(NITRO_DOC).toString('base64'));
    assert.equal(
      runBulwark(['attest', 'verify', b64, '--format', 'nitro', '--at', 'document', '--no-policy']).code,
      0,
    );
    const r = runBulwark(['attest', 'verify', NITRO_DOC, '--format', 'nitro']);
    assert.equal(r.code, 5);
    assert.equal(errOf(r.stderr), 'ERR_ATTEST_CERT_EXPIRED');
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
  });

  it('a tampered byte, a wrong nonce, a PCR policy', () => {
    const d = Buffer.from(readFileSync(NITRO_DOC));
    const off = d.indexOf(Buffer.from('bcdf05fefccaa8e5', 'hex'));
    d[off + 3] = (d[off + 3] as number) ^ 0x10;
    const bad = join(dir, 'tampered.bin');
    writeFileSync(bad, d);
    assert.equal(
      errOf(runBulwark(['attest', 'verify', bad, '--format', 'nitro', '--at', 'document']).stderr),
      'ERR_ATTEST_SIGNATURE',
    );
    assert.equal(errOf(runBulwark([...atDocument, '--nonce', 'abcd']).stderr), 'ERR_ATTEST_NONCE');
    const pol = join(dir, 'pcr.yaml');
    writeFileSync(pol, `maxAgeSeconds: null\nmeasurements:\n  PCR0: ["${'00'.repeat(48)}"]\n`);
    const r = runBulwark([...atDocument, '--policy', pol]);
    assert.equal(r.code, 5);
    assert.equal(errOf(r.stderr), 'ERR_ATTEST_MEASUREMENT');
  });

  it('SEV-SNP: the production defaults refuse the debug guest; --no-policy checks signature and chain only', () => {
    const args = [
      'attest',
      'verify',
      SNP_REPORT,
      '--format',
      'sev-snp',
      '--chain',
      SNP_ASK_ARK,
      '--chain',
      SNP_VCEK,
    ];
    const def = runBulwark(args);
    assert.equal(def.code, 5);
    assert.equal(errOf(def.stderr), 'ERR_ATTEST_DEBUG');
    const ok = runBulwark(['--json', ...args, '--no-policy']);
    assert.equal(ok.code, 0, ok.stderr);
    const out = JSON.parse(ok.stdout) as { policy: string; claims: { debug: boolean } };
    assert.equal(out.claims.debug, true);
    assert.match(out.policy, /^none \(--no-policy/);
    const prod = join(dir, 'prod.yaml');
    writeFileSync(prod, 'requireHardware: true\nallowDebug: false\n');
    const r = runBulwark([...args, '--policy', prod]);
    assert.equal(r.code, 5);
    assert.equal(errOf(r.stderr), 'ERR_ATTEST_DEBUG');
  });

  it('usage, input and config errors have their exit codes', async () => {
    const unknown = await runBulwarkInProcess(['attest', 'verify', NITRO_DOC, '--format', 'sgx']);
    assert.equal(unknown.code, 2);
    assert.equal(errOf(unknown.stderr), 'ERR_ATTEST_FORMAT_UNKNOWN');
    assert.equal(
      (await runBulwarkInProcess(['attest', 'verify', join(dir, 'nope.bin'), '--format', 'nitro'])).code,
      3,
    );
    const badPolicy = join(dir, 'bad.yaml');
    writeFileSync(badPolicy, 'alowDebug: true\n');
    const r = await runBulwarkInProcess([...atDocument, '--policy', badPolicy]);
    assert.equal(r.code, 4);
    assert.equal(errOf(r.stderr), 'ERR_ATTEST_POLICY_INVALID');
    assert.equal(
      runBulwark(['attest', 'verify', NITRO_DOC, '--format', 'nitro', '--at', 'yesterday']).code,
      2,
    );
  });
});

describe('bulwark attest verify --format software', () => {
  it('needs the pinned signer key and says plainly there is no hardware guarantee', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const doc = join(dir, 'soft.bin');
    writeFileSync(
      doc,
      signSoftwareAttestation(
        {
          moduleId: 'm',
          timestamp: Date.now(),
          measurements: { model: new Uint8Array(48) },
          nonce: null,
          publicKey: null,
          userData: null,
        },
        privateKey,
        publicKey,
      ),
    );
    const key = join(dir, 'signer.pem');
    writeFileSync(key, publicKey.export({ type: 'spki', format: 'pem' }));
    // The production defaults require hardware: software mode passes only without a policy.
    assert.equal(
      errOf(runBulwark(['attest', 'verify', doc, '--format', 'software', '--root', key]).stderr),
      'ERR_ATTEST_HARDWARE_REQUIRED',
    );
    const ok = runBulwark(['attest', 'verify', doc, '--format', 'software', '--root', key, '--no-policy']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /SOFTWARE: no hardware guarantee/);
    assert.equal(
      errOf(runBulwark(['attest', 'verify', doc, '--format', 'software']).stderr),
      'ERR_ATTEST_UNTRUSTED_ROOT',
    );
    const prod = join(dir, 'hw.yaml');
    writeFileSync(prod, '{}\n');
    assert.equal(
      errOf(
        runBulwark(['attest', 'verify', doc, '--format', 'software', '--root', key, '--policy', prod]).stderr,
      ),
      'ERR_ATTEST_HARDWARE_REQUIRED',
    );
    const f = runBulwark(['--json', 'attest', 'formats']);
    assert.deepEqual(
      (JSON.parse(f.stdout) as { formats: { format: string }[] }).formats.map((x) => x.format),
      ['nitro', 'sev-snp', 'software'],
    );
  });
});
