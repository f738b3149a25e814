import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  ClientSession,
  encodeInferenceRequest,
  httpStatusOf,
  parseFrame,
  parseInferenceResponse,
  parsePolicy,
  SoftwareEnclave,
} from '../../src/attest/index.js';
import { encodeRecord, RecordKind, RecordReader } from '../../src/attest/runtime/protocol.js';
import { type ErrorCode, errorCodes, SeededRng } from '../../src/core/index.js';
import { httpStatus } from '../../src/gateway/errors.js';
import { Network, toOnnx } from '../../src/ml/index.js';

const D = 5;

function includes(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength).includes(Buffer.from(needle));
}

describe('software enclave record channel (binary records on their own pipe)', () => {
  it('reassembles records split and joined arbitrarily, and refuses an absurd length', () => {
    const recs = [
      encodeRecord(RecordKind.open, 1, [Buffer.from('first frame')]),
      encodeRecord(RecordKind.bytes, 0xffffffff, []),
      encodeRecord(RecordKind.seal, 7, [Uint8Array.of(0, 0, 0, 9), Buffer.alloc(70_000, 0xab)]),
    ];
    const all = Buffer.concat(recs);
    const rng = new SeededRng(5);
    for (let trial = 0; trial < 20; trial++) {
      const got: [number, number, string][] = [];
      const r = new RecordReader((k, id, body) => got.push([k, id, body.toString('hex')]));
      let o = 0;
      while (o < all.length) {
        const n = 1 + rng.int(3000);
        r.push(all.subarray(o, o + n));
        o += n;
      }
      assert.deepEqual(got, [
        [RecordKind.open, 1, Buffer.from('first frame').toString('hex')],
        [RecordKind.bytes, 0xffffffff, ''],
        [
          RecordKind.seal,
          7,
          Buffer.concat([Uint8Array.of(0, 0, 0, 9), Buffer.alloc(70_000, 0xab)]).toString('hex'),
        ],
      ]);
    }
    const r = new RecordReader(() => assert.fail('no record expected'));
    assert.throws(() => r.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 1])), /out of range/);
  });
});

describe('software enclave: sessions through the record channel', () => {
  let enclave: SoftwareEnclave;
  let net: Network;
  const verify = () => ({
    policy: parsePolicy({ requireHardware: false, allowAnyMeasurement: true }),
    roots: { software: [enclave.signerPublicKey] },
  });
  const session = async () => {
    const nonce = new Uint8Array(32).map((_, i) => i + 1);
    return ClientSession.establish(await enclave.attestation(nonce), nonce, verify());
  };

  before(async () => {
    net = new Network({ inputs: D, hidden: [4], classes: 2, rng: 8 });
    new SeededRng(6).fillNormal(net.params, 0, 0.5);
    enclave = await SoftwareEnclave.start({ model: toOnnx(net), moduleId: 'records-test' });
  });
  after(() => enclave.close());

  it('refuses a replayed frame with ERR_SESSION_REPLAY, and the error travels back with its code', async () => {
    const s = await session();
    const first = s.sealRequest(Buffer.from('{"q":1}'));
    const o = await enclave.open(first.frame);
    assert.equal(Buffer.from(o.plaintext).toString(), '{"q":1}');
    assert.equal(o.seq, 0n);
    assert.equal(o.sessionId, s.sessionId);
    assert.equal(Buffer.from(s.openResponse(await o.respond(Buffer.from('ok')), 0n)).toString(), 'ok');
    await assert.rejects(enclave.open(first.frame), { code: 'ERR_SESSION_REPLAY' });
    const d = s.sealRequest(Buffer.from('{"q":2}'));
    await (await enclave.open(d.frame)).respond(Buffer.from('ok'));
    await assert.rejects(enclave.open(d.frame), { code: 'ERR_SESSION_REPLAY' });
    // A request is answered once.
    const e = s.sealRequest(Buffer.from('{"q":3}'));
    const oe = await enclave.open(e.frame);
    await oe.respond(Buffer.from('a'));
    await assert.rejects(oe.respond(Buffer.from('b')), { code: 'ERR_SESSION_UNKNOWN' });
  });

  it("refuses a frame sealed under another session's key (ERR_SESSION_DECRYPT), and a forged response", async () => {
    const a = await session();
    const b = await session();
    await (await enclave.open(a.sealRequest(Buffer.from('a0')).frame)).respond(Buffer.from('x'));
    await (await enclave.open(b.sealRequest(Buffer.from('b0')).frame)).respond(Buffer.from('x'));
    // A's DATA frame relabelled with B's session id: B's key does not authenticate it.
    const fa = Buffer.from(a.sealRequest(Buffer.from('secret of a')).frame);
    const fb = parseFrame(b.sealRequest(Buffer.from('b1')).frame);
    assert.equal(fb.type, 2);
    if (fb.type === 2) fa.set(fb.sessionId, 5);
    await assert.rejects(enclave.open(fa), { code: 'ERR_SESSION_DECRYPT' });
    // B's response cannot be opened as A's (another session's key and id).
    const rb = b.sealRequest(Buffer.from('b2'));
    const ob = await enclave.open(rb.frame);
    const answer = await ob.respond(Buffer.from('for b'));
    assert.throws(() => a.openResponse(answer, rb.seq), { code: 'ERR_SESSION_UNKNOWN' });
    assert.equal(Buffer.from(b.openResponse(answer, rb.seq)).toString(), 'for b');
  });

  it('handle(): the host process only ever carries ciphertext; the model runs in the worker', async () => {
    const s = await session();
    // Distinctive plaintext: the inputs and the output field names of the answer.
    const inputs = [[0.123456789, 1.5, -2.25, 3.0625, 0.5]];
    const request = encodeInferenceRequest(inputs);
    // Every byte this process writes to or reads from any socket during the call.
    const seen: Buffer[] = [];
    const write = Socket.prototype.write;
    const emit = Socket.prototype.emit;
    Socket.prototype.write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
      if (chunk instanceof Uint8Array) seen.push(Buffer.from(chunk));
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof write;
    Socket.prototype.emit = function (this: Socket, event: string | symbol, ...args: unknown[]) {
      if (event === 'data' && args[0] instanceof Uint8Array) seen.push(Buffer.from(args[0]));
      return (emit as (...a: unknown[]) => boolean).call(this, event, ...args);
    } as typeof emit;
    let answer: Uint8Array;
    const { frame, seq } = s.sealRequest(request);
    try {
      answer = await enclave.handle(frame);
    } finally {
      Socket.prototype.write = write;
      Socket.prototype.emit = emit;
    }
    const res = parseInferenceResponse(s.openResponse(answer, seq));
    const probs = res.outputs?.['probabilities'];
    assert.ok(probs);
    const ours = net.predictProba(Float32Array.from(inputs.flat()), 1);
    assert.ok(Math.abs((probs.data[0] as number) - (ours[0] as number)) < 1e-5);
    // The traffic was seen (the test can fail), and none of it is plaintext.
    assert.ok(seen.length >= 2, 'the record channel was not observed');
    assert.ok(
      seen.some((c) => includes(c, frame)),
      'the sealed request crossed the channel',
    );
    assert.ok(
      seen.some((c) => includes(c, answer)),
      'the sealed answer crossed the channel',
    );
    for (const c of seen) {
      assert.ok(!includes(c, Buffer.from('0.123456789')), 'request plaintext on the host side');
      assert.ok(!includes(c, Buffer.from('probabilities')), 'response plaintext on the host side');
    }
  });
});

describe('one HTTP status mapping for the attested endpoint and the gateway', () => {
  it('httpStatusOf is the gateway mapping for every code', () => {
    for (const code of Object.keys(errorCodes) as ErrorCode[])
      assert.equal(httpStatusOf(code), httpStatus(code), code);
    assert.equal(httpStatusOf('ERR_SESSION_MALFORMED'), 400);
    assert.equal(httpStatusOf('ERR_SESSION_REPLAY'), 403);
    assert.equal(httpStatusOf('ERR_SESSION_DECRYPT'), 403);
    assert.equal(httpStatusOf('ERR_SESSION_UNKNOWN'), 403);
    assert.equal(httpStatusOf('ERR_ENCLAVE_UNAVAILABLE'), 503);
    assert.equal(httpStatusOf('ERR_AUTH_MISSING'), 401);
    assert.equal(httpStatusOf('ERR_GATEWAY_RATE_LIMITED'), 429);
  });
});
