import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { encode } from 'cbor2';
import { decodeCbor } from '../../src/attest/cose.js';
import {
  AttestedClient,
  attestedHttpHandler,
  decodeNsmAttestationResponse,
  encodeInferenceRequest,
  encodeNsmAttestationRequest,
  type FetchLike,
  parseInferenceResponse,
  parsePolicy,
  SoftwareEnclave,
} from '../../src/attest/index.js';
import { SeededRng } from '../../src/core/index.js';
import { Network, toOnnx } from '../../src/ml/index.js';

const ROWS = 4;
const D = 5;

describe('software enclave: a worker process runs the model and holds the keys', () => {
  let enclave: SoftwareEnclave;
  let server: Server;
  let base: string;
  let net: Network;
  let model: Uint8Array;

  before(async () => {
    net = new Network({ inputs: D, hidden: [6], classes: 2, rng: 3 });
    new SeededRng(4).fillNormal(net.params, 0, 0.5);
    model = toOnnx(net);
    enclave = await SoftwareEnclave.start({ model, moduleId: 'enclave-test' });
    server = createServer(attestedHttpHandler(enclave, '/v1/attested'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/attested`;
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    await enclave.close();
  });

  it('is another process, and measures the model it loaded', () => {
    assert.notEqual(enclave.pid, process.pid);
    assert.ok(enclave.pid > 0);
    assert.equal(enclave.measurements['model'], createHash('sha384').update(model).digest('hex'));
    assert.match(enclave.signerPublicKey, /BEGIN PUBLIC KEY/);
  });

  it("answers encrypted inference over HTTP with the model's own probabilities", async () => {
    const client = new AttestedClient({
      baseUrl: base,
      fetch: globalThis.fetch as unknown as FetchLike,
      policy: parsePolicy({
        requireHardware: false,
        measurements: { model: [enclave.measurements['model'] as string] },
      }),
      roots: { software: [enclave.signerPublicKey] },
    });
    const claims = await client.connect();
    assert.equal(claims.hardware, false);
    assert.equal(claims.details['moduleId'], 'enclave-test');
    assert.deepEqual(new Uint8Array(claims.publicKey ?? []), new Uint8Array(enclave.publicKey));
    const rng = new SeededRng(9);
    const x = rng.fillNormal(new Float32Array(ROWS * D), 0, 1);
    const inputs = Array.from({ length: ROWS }, (_, i) => Array.from(x.subarray(i * D, (i + 1) * D)));
    const res = parseInferenceResponse(await client.request(encodeInferenceRequest(inputs)));
    const probs = res.outputs?.['probabilities'];
    assert.ok(probs, JSON.stringify(res).slice(0, 200));
    assert.deepEqual(probs.dims, [ROWS, 2]);
    const ours = net.predictProba(Float32Array.from(inputs.flat()), ROWS);
    probs.data.forEach((p, i) => {
      assert.ok(Math.abs(p - (ours[i] as number)) < 1e-5, `${p} vs ${ours[i]}`);
    });
    // An input the model refuses comes back as an encrypted error, not a plaintext one.
    const bad = parseInferenceResponse(await client.request(encodeInferenceRequest([[1, 2]])));
    assert.equal(bad.error?.code, 'ERR_SHAPE_MISMATCH');
    const nan = parseInferenceResponse(
      await client.request(new TextEncoder().encode('{"inputs":[["x",1,2,3,4]]}')),
    );
    assert.equal(nan.error?.code, 'ERR_INPUT_INVALID');
  });

  it('HTTP refusals carry the session code; a production client refuses software mode', async () => {
    const r = await fetch(`${base}/infer`, { method: 'POST', body: new Uint8Array([1, 2, 3, 4, 5, 6]) });
    assert.equal(r.status, 400);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'ERR_SESSION_MALFORMED');
    const prod = new AttestedClient({
      baseUrl: base,
      fetch: globalThis.fetch as unknown as FetchLike,
      policy: parsePolicy({}),
      roots: { software: [enclave.signerPublicKey] },
    });
    await assert.rejects(prod.connect(), { code: 'ERR_ATTEST_HARDWARE_REQUIRED' });
  });

  it('when the worker dies, its keys die with it: requests fail as unavailable', async () => {
    const e2 = await SoftwareEnclave.start({ model: null });
    process.kill(e2.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    await assert.rejects(e2.attestation(new Uint8Array(32)), { code: 'ERR_ENCLAVE_UNAVAILABLE' });
    await e2.close();
  });
});

describe('nitro runtime adapter: NSM message encoding (the device round trip is untested: no enclave here)', () => {
  it('encodes Request::Attestation and decodes Response::Attestation and errors', () => {
    const req = decodeCbor(
      encodeNsmAttestationRequest({
        userData: Uint8Array.of(1),
        nonce: null,
        publicKey: Uint8Array.of(2, 3),
      }),
      'req',
    ) as Map<string, Map<string, unknown>>;
    const a = req.get('Attestation') as Map<string, unknown>;
    assert.deepEqual([...a.keys()], ['user_data', 'nonce', 'public_key']);
    assert.equal(a.get('nonce'), null);
    assert.deepEqual(new Uint8Array(a.get('public_key') as Uint8Array), Uint8Array.of(2, 3));
    assert.throws(
      () => encodeNsmAttestationRequest({ userData: new Uint8Array(513), nonce: null, publicKey: null }),
      { code: 'ERR_INVALID_ARGUMENT' },
    );
    const doc = Uint8Array.of(0x84, 1, 2);
    assert.deepEqual(
      decodeNsmAttestationResponse(encode(new Map([['Attestation', new Map([['document', doc]])]]))),
      doc,
    );
    assert.deepEqual(
      decodeNsmAttestationResponse(encode(new Map([['Attestation', new Map([['document', [0x84, 1, 2]]])]]))),
      doc,
    );
    assert.throws(() => decodeNsmAttestationResponse(encode(new Map([['Error', 'InvalidArgument']]))), {
      code: 'ERR_ENCLAVE_UNAVAILABLE',
    });
    assert.throws(() => decodeNsmAttestationResponse(Uint8Array.of(0xff)), {
      code: 'ERR_ENCLAVE_UNAVAILABLE',
    });
  });
});
