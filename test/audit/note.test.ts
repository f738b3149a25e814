import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  canonicalJson,
  checkpointText,
  decodeEntry,
  EMPTY_ROOT,
  ed25519KeyId,
  eventRefs,
  generateSignerKey,
  openNote,
  parseCheckpointText,
  parseEventInput,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  signCheckpoint,
  signNote,
  verifyCheckpoint,
} from '../../src/audit/index.js';
import { code } from '../helpers/errors.js';

// The known-answer example of golang.org/x/mod/sumdb/note (the reference implementation of the
// C2SP signed-note format): keys, text and the exact signed note. Ed25519 is deterministic, so
// signing the text with the key must reproduce the signature byte for byte.
const SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const TEXT =
  "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const SIGNED = `${TEXT}\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`;

describe('signed notes (C2SP signed-note)', () => {
  it('reproduces the reference key id, verifier key and signature exactly', () => {
    const signer = parseSignerKey(SKEY);
    assert.equal(signer.name, 'PeterNeumann');
    assert.equal(signer.keyId.toString(16), 'c74f20a3');
    assert.equal(signer.verifier.vkey, VKEY);
    assert.equal(ed25519KeyId('PeterNeumann', parseVerifierKey(VKEY).publicKey), 0xc74f20a3);
    assert.equal(signNote(TEXT, [signer]), SIGNED);
    assert.equal(openNote(SIGNED, parseVerifierKey(VKEY)), TEXT);
  });

  it('rejects mangled keys with ERR_AUDIT_KEY_INVALID and never echoes key material', () => {
    const bad = [
      VKEY.slice(1),
      VKEY.replace('c74f20a3', 'c74f20a4'),
      VKEY.replace('+ARpc', '+AZpc'),
      'PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==',
      'Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW',
      'PeterNeumann',
    ];
    for (const k of bad) assert.throws(() => parseVerifierKey(k), code('ERR_AUDIT_KEY_INVALID'), k);
    for (const k of [
      SKEY.slice(0, -2),
      SKEY.replace('PRIVATE', 'PUBLIC'),
      SKEY.replace('c74f20a3', '00000000'),
    ]) {
      assert.throws(
        () => parseSignerKey(k),
        (e: unknown) => code('ERR_AUDIT_KEY_INVALID')(e) && !(e as Error).message.includes('AYEKFAL'),
      );
    }
  });

  it('ignores signatures by unknown keys, requires one by the trusted key, rejects a bad one', () => {
    const other = generateSignerKey('PeterNeumann');
    // A note signed only by another key that shares the name: ignored, so no trusted signature.
    const byOther = signNote(TEXT, [other.signer]);
    assert.throws(() => openNote(byOther, parseVerifierKey(VKEY)), code('ERR_AUDIT_CHECKPOINT_SIGNATURE'));
    // Both signatures: the trusted one verifies.
    const both = signNote(TEXT, [other.signer, parseSignerKey(SKEY)]);
    assert.equal(openNote(both, parseVerifierKey(VKEY)), TEXT);
    // A trusted signature over altered text fails.
    const altered = SIGNED.replace('answer', 'answed');
    assert.throws(() => openNote(altered, parseVerifierKey(VKEY)), code('ERR_AUDIT_CHECKPOINT_SIGNATURE'));
    // Malformed notes.
    for (const n of [
      TEXT,
      `${TEXT}\n\u2014 PeterNeumann\n`,
      `${TEXT}\n- PeterNeumann abc=\n`,
      SIGNED.slice(0, -1),
    ])
      assert.throws(() => parseNote(n), code('ERR_AUDIT_CHECKPOINT_INVALID'));
  });
});

describe('checkpoints (C2SP tlog-checkpoint)', () => {
  const { signer, vkey } = generateSignerKey('bulwark.test/log');
  const head = { origin: 'bulwark.test/log', size: 20852163, root: Buffer.alloc(32, 7) };

  it('formats origin, decimal size and base64 root, and round-trips through sign and verify', () => {
    assert.equal(
      checkpointText(head),
      `bulwark.test/log\n20852163\n${Buffer.alloc(32, 7).toString('base64')}\n`,
    );
    const cp = signCheckpoint(head, signer);
    assert.match(
      cp.note,
      /^bulwark\.test\/log\n20852163\n[A-Za-z0-9+/]{43}=\n\n\u2014 bulwark\.test\/log [A-Za-z0-9+/]+=*\n$/u,
    );
    const v = verifyCheckpoint(cp.note, parseVerifierKey(vkey));
    assert.equal(v.size, head.size);
    assert.deepEqual(v.root, head.root);
    // The spec's own example text parses (extension lines allowed).
    const t = parseCheckpointText(
      'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\nx\n',
    );
    assert.equal(t.size, 20852163);
  });

  it('rejects another key, another origin and malformed bodies with distinct codes', () => {
    const cp = signCheckpoint(head, signer);
    const other = generateSignerKey('bulwark.test/log');
    assert.throws(
      () => verifyCheckpoint(cp.note, other.signer.verifier),
      code('ERR_AUDIT_CHECKPOINT_SIGNATURE'),
    );
    assert.throws(
      () => verifyCheckpoint(cp.note, signer.verifier, 'bulwark.test/other'),
      code('ERR_AUDIT_ORIGIN_MISMATCH'),
    );
    for (const body of [
      'o\n01\nAAAA\n',
      'o\n-1\n' + EMPTY_ROOT.toString('base64') + '\n',
      'o\n1\nnot-base64\n',
      'o\n1\n',
    ])
      assert.throws(() => parseCheckpointText(body), code('ERR_AUDIT_CHECKPOINT_INVALID'), body);
  });
});

describe('events', () => {
  const digest = (c: string) => `sha256:${c.repeat(64)}`;

  it('validates each type strictly and names the field at fault', () => {
    const ok = parseEventInput({
      type: 'model.trained',
      data: {
        modelDigest: digest('a'),
        datasetDigest: digest('b'),
        algorithm: 'dp-sgd',
        hyperparameters: { lr: 0.1, epochs: 3 },
        privacy: { epsilon: 3, delta: 1e-5, accountant: 'rdp', noiseMultiplier: 1.1, clipNorm: 1 },
      },
    });
    assert.equal(ok.type, 'model.trained');
    const cases: [unknown, RegExp][] = [
      [{ type: 'model.trained', data: { modelDigest: 'md5:x' } }, /modelDigest/],
      [
        {
          type: 'prediction',
          data: {
            requestId: 'r',
            caller: 'c',
            modelDigest: digest('a'),
            inputDigest: digest('b'),
            decision: 'x',
            detections: [],
            latencyMs: -1,
          },
        },
        /latencyMs/,
      ],
      [
        { type: 'key.created', data: { keyId: 'k', algorithm: 'a', provider: 'p', purpose: 'x', extra: 1 } },
        /extra|Unrecognized/,
      ],
      [{ type: 'no.such.type', data: {} }, /type/],
      [
        { type: 'request.denied', data: { requestId: 'r', caller: null, stage: 'auth', code: 'bad' } },
        /code/,
      ],
    ];
    for (const [input, re] of cases)
      assert.throws(
        () => parseEventInput(input),
        (e: unknown) => code('ERR_AUDIT_EVENT_INVALID')(e) && re.test((e as Error).message),
      );
  });

  it('canonical JSON sorts keys, drops undefined and is what decodeEntry insists on', () => {
    assert.equal(
      canonicalJson({ b: 1, a: [true, null, 'x'], c: undefined, d: { z: 1.5, y: -0 } }),
      '{"a":[true,null,"x"],"b":1,"d":{"y":0,"z":1.5}}',
    );
    assert.throws(() => canonicalJson(Number.NaN), RangeError);
    const body = `{"data":{"keyId":"k1","reason":"rotation"},"id":"e1","index":3,"time":"2025-01-01T00:00:00.000Z","type":"key.destroyed","v":1}`;
    assert.equal(decodeEntry(body)?.index, 3);
    assert.equal(decodeEntry(body.replace('"id":"e1",', '"id": "e1",')), null, 'non-canonical spacing');
    assert.equal(decodeEntry(body.replace('"v":1', '"v":2')), null, 'unknown version');
    assert.equal(decodeEntry(body.replace('rotation', 'rotation","x":"y')), null, 'unknown field');
  });

  it('declares what each event produces and uses, so lineage can follow digests', () => {
    const pred = parseEventInput({
      type: 'prediction',
      data: {
        requestId: 'r',
        caller: 'alice',
        modelDigest: digest('a'),
        packageDigest: digest('c'),
        inputDigest: digest('b'),
        decision: 'fraud',
        detections: [{ detector: 'mahalanobis', score: 3.2, flagged: true }],
        latencyMs: 2,
      },
    });
    assert.deepEqual(eventRefs(pred), { produces: [], uses: [`package:${digest('c')}`] });
    const pkg = parseEventInput({
      type: 'model.packaged',
      data: { packageDigest: digest('c'), modelDigest: digest('a'), keyId: 'dek-1', signerKeyId: 'sig-1' },
    });
    assert.deepEqual(eventRefs(pkg), {
      produces: [`package:${digest('c')}`],
      uses: [`model:${digest('a')}`, 'key:dek-1', 'key:sig-1'],
    });
  });
});
