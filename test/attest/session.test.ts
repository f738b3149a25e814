import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { encode } from 'cbor2';
import {
  AttestedClient,
  AttestedSessionServer,
  type Attester,
  ClientSession,
  type FetchLike,
  parseFrame,
  parsePolicy,
  ReplayWindow,
  signSoftwareAttestation,
} from '../../src/attest/index.js';
import type { ErrorCode } from '../../src/core/index.js';

/** A software attester in this process (the worker runs the same code; see enclave.test.ts). */
function softwareAttester(measurement = 'aa'): { attester: Attester; pinned: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    pinned: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    attester: {
      format: 'software',
      attest: async (b) => ({
        document: signSoftwareAttestation(
          {
            moduleId: 'session-test',
            timestamp: Date.now(),
            measurements: { model: Buffer.from(measurement.repeat(48), 'hex') },
            ...b,
          },
          privateKey,
          publicKey,
        ),
      }),
    },
  };
}

const te = new TextEncoder();
const td = new TextDecoder();
// The protocol tests pin no measurement (allowAnyMeasurement): what they test is the session itself.
const policy = (extra: Record<string, unknown> = {}) =>
  parsePolicy({ requireHardware: false, allowAnyMeasurement: true, ...extra });

async function setup(extra: Record<string, unknown> = {}) {
  const { attester, pinned } = softwareAttester();
  const server = await AttestedSessionServer.create({ attester });
  const nonce = new Uint8Array(randomBytes(32));
  const envelope = await server.attestation(nonce);
  const session = await ClientSession.establish(envelope, nonce, {
    policy: policy(extra),
    roots: { software: [pinned] },
  });
  return { server, session, envelope, nonce, pinned };
}

function errCode(f: () => unknown): ErrorCode | 'ok' {
  try {
    f();
    return 'ok';
  } catch (e) {
    return (e as { code: ErrorCode }).code;
  }
}
async function code(p: Promise<unknown>): Promise<ErrorCode | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return (e as { code: ErrorCode }).code;
  }
}

describe('attested session: protocol', () => {
  it('a request and its response round-trip, bound to the attestation', async () => {
    const { server, session } = await setup({ measurements: { model: ['aa'.repeat(48)] } });
    assert.equal(session.claims.hardware, false);
    assert.equal(session.claims.nonceVerified, true);
    for (let i = 0; i < 3; i++) {
      const { frame, seq } = session.sealRequest(te.encode(`request ${i}`));
      assert.equal(seq, BigInt(i));
      assert.equal(parseFrame(frame).type, i === 0 ? 1 : 2);
      const opened = await server.openRequest(frame);
      assert.equal(td.decode(opened.plaintext), `request ${i}`);
      assert.equal(opened.sessionId, session.sessionId);
      assert.equal(
        td.decode(session.openResponse(opened.respond(te.encode(`answer ${i}`)), seq)),
        `answer ${i}`,
      );
    }
    assert.equal(server.sessionCount, 1);
  });

  it('ciphertext does not contain the plaintext', async () => {
    const { session } = await setup();
    const secret = 'card 4111111111111111';
    const { frame } = session.sealRequest(te.encode(secret));
    assert.equal(Buffer.from(frame).includes(Buffer.from(secret)), false);
  });

  it('replays are refused: the same DATA frame, the same OPEN, a response twice', async () => {
    const { server, session } = await setup();
    const open = session.sealRequest(te.encode('a'));
    const r0 = await server.openRequest(open.frame);
    assert.equal(await code(server.openRequest(open.frame)), 'ERR_SESSION_REPLAY');
    const data = session.sealRequest(te.encode('b'));
    const r1 = await server.openRequest(data.frame);
    assert.equal(await code(server.openRequest(data.frame)), 'ERR_SESSION_REPLAY');
    const resp = r1.respond(te.encode('B'));
    session.openResponse(resp, data.seq);
    assert.equal(
      errCode(() => session.openResponse(resp, data.seq)),
      'ERR_SESSION_REPLAY',
    );
    assert.equal(
      errCode(() => session.openResponse(resp, open.seq)),
      'ERR_SESSION_REPLAY',
    );
    assert.equal(
      errCode(() => r0.respond(te.encode('x')) && r0.respond(te.encode('y'))),
      'ERR_SESSION_REPLAY',
    );
  });

  it('copies of one OPEN arriving together open one session, never two (no response nonce reuse)', async () => {
    const { server, session } = await setup();
    const { frame } = session.sealRequest(te.encode('transfer 100'));
    // A replaying network sends the captured OPEN several times at once: all copies are decapsulating
    // (an await) before any of them has opened the session.
    const results = await Promise.allSettled([1, 2, 3].map(() => server.openRequest(frame)));
    // Which copy wins depends on which decapsulation finishes first; exactly one does.
    assert.deepEqual(
      results.map((r) => (r.status === 'fulfilled' ? 'opened' : (r.reason as { code: string }).code)).sort(),
      ['ERR_SESSION_REPLAY', 'ERR_SESSION_REPLAY', 'opened'],
    );
    assert.equal(server.sessionCount, 1);
  });

  it('out-of-order requests inside the window are accepted once; older ones are refused', async () => {
    const { server, session } = await setup();
    await server.openRequest(session.sealRequest(te.encode('open')).frame);
    const frames = Array.from({ length: 70 }, (_, i) => session.sealRequest(te.encode(`m${i}`)).frame);
    await server.openRequest(frames[69] as Uint8Array);
    await server.openRequest(frames[10] as Uint8Array);
    assert.equal(await code(server.openRequest(frames[10] as Uint8Array)), 'ERR_SESSION_REPLAY');
    assert.equal(
      await code(server.openRequest(frames[2] as Uint8Array)),
      'ERR_SESSION_REPLAY',
      'older than 64',
    );
  });

  it('the replay window (RFC 4303) on its own', () => {
    const w = new ReplayWindow(8);
    w.accept(5n, 'x');
    w.accept(3n, 'x');
    assert.equal(
      errCode(() => w.accept(3n, 'x')),
      'ERR_SESSION_REPLAY',
    );
    w.accept(12n, 'x');
    assert.equal(
      errCode(() => w.accept(4n, 'x')),
      'ERR_SESSION_REPLAY',
    );
    w.accept(6n, 'x');
    assert.equal(
      errCode(() => w.accept(6n, 'x')),
      'ERR_SESSION_REPLAY',
    );
  });

  it('a changed byte fails authentication; an unknown session or attestation is refused', async () => {
    const { server, session } = await setup();
    const open = session.sealRequest(te.encode('hello'));
    const bad = Uint8Array.from(open.frame);
    bad[bad.length - 20] = (bad[bad.length - 20] as number) ^ 1;
    assert.equal(await code(server.openRequest(bad)), 'ERR_SESSION_DECRYPT');
    // The forged OPEN did not burn the attestation: the genuine one still opens.
    await server.openRequest(open.frame);
    const data = session.sealRequest(te.encode('x'));
    const hdr = Uint8Array.from(data.frame);
    hdr[hdr.length - 17] = (hdr[hdr.length - 17] as number) ^ 1; // inside the ciphertext's tag region
    assert.equal(await code(server.openRequest(hdr)), 'ERR_SESSION_DECRYPT');
    const other = await setup();
    const foreignOpen = other.session.sealRequest(te.encode('x'));
    assert.equal(
      await code(server.openRequest(foreignOpen.frame)),
      'ERR_SESSION_UNKNOWN',
      "another server's attestation",
    );
    const s2 = Uint8Array.from(data.frame);
    s2[6] = (s2[6] as number) ^ 0xff; // session id
    assert.equal(await code(server.openRequest(s2)), 'ERR_SESSION_UNKNOWN');
    assert.equal(await code(server.openRequest(Uint8Array.of(1, 2, 3, 4, 5, 6))), 'ERR_SESSION_MALFORMED');
  });

  it('sessions and pending attestations expire', async () => {
    let now = 1_000_000;
    const { attester, pinned } = softwareAttester();
    const server = await AttestedSessionServer.create({
      attester,
      now: () => now,
      attestationTtlSeconds: 60,
      sessionTtlSeconds: 120,
    });
    const nonce = new Uint8Array(randomBytes(32));
    const env = await server.attestation(nonce);
    const s = await ClientSession.establish(env, nonce, { policy: policy(), roots: { software: [pinned] } });
    now += 61_000;
    assert.equal(
      await code(server.openRequest(s.sealRequest(te.encode('late')).frame)),
      'ERR_SESSION_UNKNOWN',
    );
    const nonce2 = new Uint8Array(randomBytes(32));
    const env2 = await server.attestation(nonce2);
    const s2 = await ClientSession.establish(env2, nonce2, {
      policy: policy(),
      roots: { software: [pinned] },
    });
    await server.openRequest(s2.sealRequest(te.encode('a')).frame);
    now += 121_000;
    assert.equal(await code(server.openRequest(s2.sealRequest(te.encode('b')).frame)), 'ERR_SESSION_UNKNOWN');
  });
});

describe('attested session: the client refuses what its policy does not allow', () => {
  it('hardware required, a measurement not allowed, debug', async () => {
    const { attester, pinned } = softwareAttester('bb');
    const server = await AttestedSessionServer.create({ attester });
    const nonce = new Uint8Array(randomBytes(32));
    const env = await server.attestation(nonce);
    const roots = { software: [pinned] };
    assert.equal(
      await code(ClientSession.establish(env, nonce, { policy: parsePolicy({}), roots })),
      'ERR_ATTEST_HARDWARE_REQUIRED',
    );
    assert.equal(
      await code(
        ClientSession.establish(env, nonce, {
          policy: policy({ measurements: { model: ['aa'.repeat(48)] } }),
          roots,
        }),
      ),
      'ERR_ATTEST_MEASUREMENT',
    );
    assert.equal(
      await code(ClientSession.establish(env, nonce, { policy: policy(), roots: {} })),
      'ERR_ATTEST_UNTRUSTED_ROOT',
    );
    assert.equal(
      await code(
        ClientSession.establish(env, nonce, {
          policy: policy(),
          roots,
          now: () => new Date(Date.now() + 3_600_000),
        }),
      ),
      'ERR_ATTEST_STALE',
    );
  });

  it('a replayed envelope (made for another nonce) and a substituted public key', async () => {
    const { server, envelope, pinned } = await setup();
    const roots = { software: [pinned] };
    assert.equal(
      await code(
        ClientSession.establish(envelope, new Uint8Array(randomBytes(32)), { policy: policy(), roots }),
      ),
      'ERR_ATTEST_NONCE',
    );
    // A host in the middle swaps in its own HPKE key: the attestation does not bind it.
    const nonce = new Uint8Array(randomBytes(32));
    const genuine = await server.attestation(nonce);
    const { decode } = await import('cbor2');
    const m = decode(genuine, { preferMap: true }) as Map<string, unknown>;
    m.set('publicKey', new Uint8Array(32).fill(7));
    m.set('document', new Uint8Array(m.get('document') as Uint8Array));
    m.set('evidence', []);
    const forged = encode(m);
    assert.equal(
      await code(ClientSession.establish(forged, nonce, { policy: policy(), roots })),
      'ERR_ATTEST_NONCE',
    );
  });
  it('re-attests once when the server no longer holds the session', async () => {
    let now = 5_000_000;
    const { attester, pinned } = softwareAttester();
    const server = await AttestedSessionServer.create({ attester, now: () => now, sessionTtlSeconds: 60 });
    let attestations = 0;
    const fetch: FetchLike = async (url, init) => {
      try {
        if (url.endsWith('/attestation')) attestations++;
        const body = url.endsWith('/attestation')
          ? await server.attestation(init.body)
          : await server.handle(init.body, (pt) => pt);
        return { status: 200, arrayBuffer: async () => Uint8Array.from(body).buffer };
      } catch (e) {
        const err = e as { code: string; message: string };
        return {
          status: 403,
          arrayBuffer: async () =>
            te.encode(JSON.stringify({ error: { code: err.code, message: err.message } }))
              .buffer as ArrayBuffer,
        };
      }
    };
    const client = new AttestedClient({
      baseUrl: 'https://gw.test',
      fetch,
      policy: policy(),
      roots: { software: [pinned] },
    });
    assert.equal(td.decode(await client.request(te.encode('a'))), 'a');
    now += 61_000;
    assert.equal(td.decode(await client.request(te.encode('b'))), 'b');
    assert.equal(attestations, 2);
  });
});

describe('AttestedClient over a fetch-like transport', () => {
  it('connects, sends, and maps server refusals to their codes', async () => {
    const { attester, pinned } = softwareAttester();
    const server = await AttestedSessionServer.create({ attester });
    let replayNext = false;
    let last: Uint8Array | undefined;
    const fetch: FetchLike = async (url, init) => {
      try {
        let body: Uint8Array;
        if (url.endsWith('/attestation')) body = await server.attestation(init.body);
        else {
          const frame = replayNext && last ? last : init.body;
          last = init.body;
          body = await server.handle(frame, (pt) => te.encode(td.decode(pt).toUpperCase()));
        }
        return { status: 200, arrayBuffer: async () => Uint8Array.from(body).buffer };
      } catch (e) {
        const err = e as { code: string; message: string };
        return {
          status: 403,
          arrayBuffer: async () =>
            te.encode(JSON.stringify({ error: { code: err.code, message: err.message } }))
              .buffer as ArrayBuffer,
        };
      }
    };
    const client = new AttestedClient({
      baseUrl: 'https://gw.test/v1/attested',
      fetch,
      policy: policy(),
      roots: { software: [pinned] },
    });
    assert.equal(td.decode(await client.request(te.encode('one'))), 'ONE');
    assert.equal(client.claims?.format, 'software');
    assert.equal(td.decode(await client.request(te.encode('two'))), 'TWO');
    replayNext = true;
    assert.equal(await code(client.request(te.encode('three'))), 'ERR_SESSION_REPLAY');
    const down = new AttestedClient({
      baseUrl: 'x',
      fetch: async () => {
        throw new Error('connection refused');
      },
      policy: policy(),
    });
    assert.equal(await code(down.connect()), 'ERR_ENCLAVE_UNAVAILABLE');
  });
});

describe('attested session with the nitro verifier (documents signed under a test root)', () => {
  it('runs end to end, and refuses a document whose public_key field is not the offered key', async () => {
    const { makePki, pem, signNitro } = await import('./fixtures.js');
    const pki = await makePki(new Date());
    const chain = { leaf: pki.leaf, bundle: [pki.root, pki.inter] };
    let lie = false;
    const attester: Attester = {
      format: 'nitro',
      attest: async (b) => ({
        document: signNitro(
          { timestamp: Date.now(), ...b, publicKey: lie ? new Uint8Array(32).fill(9) : b.publicKey },
          chain,
        ),
      }),
    };
    const server = await AttestedSessionServer.create({ attester });
    const opts = {
      policy: parsePolicy({ measurements: { PCR0: ['07'.repeat(48)] } }),
      roots: { nitro: [pem(pki.root)] },
    };
    const nonce = new Uint8Array(randomBytes(32));
    const s = await ClientSession.establish(await server.attestation(nonce), nonce, opts);
    assert.equal(s.claims.format, 'nitro');
    assert.equal(s.claims.hardware, true);
    const { frame, seq } = s.sealRequest(te.encode('hello enclave'));
    const opened = await server.openRequest(frame);
    assert.equal(td.decode(opened.plaintext), 'hello enclave');
    assert.equal(td.decode(s.openResponse(opened.respond(te.encode('hi')), seq)), 'hi');
    // A host that binds its own key in public_key (user data still right) is caught by the client.
    lie = true;
    const n2 = new Uint8Array(randomBytes(32));
    assert.equal(
      await code(ClientSession.establish(await server.attestation(n2), n2, opts)),
      'ERR_ATTEST_BINDING',
    );
    lie = false;
    const n3 = new Uint8Array(randomBytes(32));
    const env3 = await server.attestation(n3);
    assert.equal(
      await code(ClientSession.establish(env3, n3, { ...opts, roots: {} })),
      'ERR_ATTEST_UNTRUSTED_ROOT',
    );
  });
});
