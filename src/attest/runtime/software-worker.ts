/**
 * The software enclave worker: a child process (child_process.fork) that generates its Ed25519
 * attestation key and its HPKE key itself — neither ever leaves this process — loads the model into
 * ONNX Runtime, and answers attestation and session requests from its parent over IPC. Its
 * attestations are marked software (`hardware: false`): the operating system and whoever controls the
 * host can still read this process's memory. What it does give: the parent process never holds the
 * keys, and the protocol runs end to end exactly as with an enclave. With its own model (`handle`) the
 * parent only ever carries ciphertext; for the gateway (`open`, then `seal`) the parent receives the
 * plaintext to run its pipeline on (docs/attestation.md lists what the gateway process sees).
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { BulwarkError } from '../../core/index.js';
import { fromOnnx, OnnxRuntimeModel } from '../../ml/index.js';
import { signSoftwareAttestation } from '../formats/software.js';
import { AttestedSessionServer, type Attester, type OpenedRequest } from '../session/server.js';
import { parseInferenceRequest } from './inference.js';
import {
  encodeRecord,
  RECORD_FD,
  RecordKind,
  readRecords,
  type WorkerInit,
  type WorkerReply,
  type WorkerRequest,
} from './protocol.js';

const te = new TextEncoder();

function asBulwark(e: unknown, what: string): BulwarkError {
  return e instanceof BulwarkError ? e : new BulwarkError('ERR_INTERNAL', `software enclave: ${what}`);
}

function send(m: WorkerReply): void {
  process.send?.(m);
}

function sha384(b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha384').update(b).digest());
}

async function main(init: WorkerInit): Promise<void> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  // Self-measurements: digests of what this process loaded (self-reported, unlike a TEE's).
  const measurements: Record<string, Uint8Array> = {
    runtime: sha384(readFileSync(fileURLToPath(import.meta.url))),
  };
  if (init.model) measurements['model'] = sha384(init.model);
  for (const [k, v] of Object.entries(init.measurements ?? {})) {
    if (k === 'runtime' || k === 'model' || !/^([0-9a-f]{2})+$/.test(v)) {
      throw new BulwarkError(
        'ERR_INVALID_ARGUMENT',
        `software enclave: measurement "${k}" is reserved or not hex`,
      );
    }
    measurements[k] = Uint8Array.from(Buffer.from(v, 'hex'));
  }
  // Opened requests waiting for the parent's answer (gateway mode), forgotten after the TTL.
  const pendingTtl = init.pendingTtlMs ?? 60_000;
  const pending = new Map<number, { opened: OpenedRequest; timer: NodeJS.Timeout }>();
  let nextHandle = 1;
  const attester: Attester = {
    format: 'software',
    attest: async (b) => ({
      document: signSoftwareAttestation(
        {
          moduleId: init.moduleId,
          timestamp: Date.now(),
          measurements,
          nonce: b.nonce,
          publicKey: b.publicKey,
          userData: b.userData,
        },
        privateKey,
        publicKey,
      ),
    }),
  };
  const server = await AttestedSessionServer.create({ attester, ...(init.session ?? {}) });
  const model = init.model ? await OnnxRuntimeModel.create(init.model, { threads: init.threads }) : null;
  // The input width, when Bulwark can import the graph: wrong widths are refused before ONNX Runtime.
  let width: number | null = null;
  if (init.model) {
    try {
      width = fromOnnx(init.model).network.inputs;
    } catch {
      width = null;
    }
  }
  const app = async (pt: Uint8Array): Promise<Uint8Array> => {
    let out: unknown;
    try {
      if (!model) throw new BulwarkError('ERR_ONNX_RUNTIME', 'no model loaded in this enclave');
      const r = parseInferenceRequest(pt);
      if (width !== null && r.features !== width) {
        throw new BulwarkError(
          'ERR_SHAPE_MISMATCH',
          `the model takes ${width} features per row, the request gives ${r.features}`,
        );
      }
      const res = await model.run(r.x, r.rows, r.features);
      out = {
        outputs: Object.fromEntries(
          Object.entries(res).map(([k, v]) => [k, { dims: [...v.dims], data: Array.from(v.data) }]),
        ),
      };
    } catch (e) {
      const err = e instanceof BulwarkError ? e : new BulwarkError('ERR_INTERNAL', 'inference failed');
      out = { error: { code: err.code, message: err.message } };
    }
    return new TextEncoder().encode(JSON.stringify(out));
  };
  process.on('message', (raw: WorkerRequest) => {
    if (raw?.kind !== 'attestation') return;
    server.attestation(raw.nonce).then(
      (bytes) => send({ kind: 'result', id: raw.id, ok: true, bytes }),
      (e: unknown) => {
        const err = asBulwark(e, 'attestation failed');
        send({ kind: 'result', id: raw.id, ok: false, code: err.code, message: err.message });
      },
    );
  });
  // Session frames: binary records on their own pipe (protocol.ts), one write each way per call.
  const io = new Socket({ fd: RECORD_FD, readable: true, writable: true });
  const fail = (id: number, e: unknown, what: string) => {
    const err = asBulwark(e, what);
    io.write(
      encodeRecord(RecordKind.error, id, [
        te.encode(JSON.stringify({ code: err.code, message: err.message })),
      ]),
    );
  };
  const onRecord = (kind: number, id: number, body: Buffer) => {
    if (kind === RecordKind.open) {
      // The frame is copied out of the read buffer: the session server keeps no view into it.
      server.openRequest(Buffer.from(body)).then(
        (opened) => {
          const handle = nextHandle++;
          const timer = setTimeout(() => pending.delete(handle), pendingTtl);
          timer.unref();
          pending.set(handle, { opened, timer });
          const head = Buffer.allocUnsafe(12);
          head.writeUInt32BE(handle, 0);
          head.writeBigUInt64BE(opened.seq, 4);
          const sid = Buffer.from(opened.sessionId, 'hex');
          io.write(encodeRecord(RecordKind.opened, id, [head, sid, opened.plaintext]));
          // The record holds its own copy; this one is no longer needed.
          opened.plaintext.fill(0);
        },
        (e: unknown) => fail(id, e, 'open failed'),
      );
    } else if (kind === RecordKind.seal) {
      const handle = body.readUInt32BE(0);
      const p = pending.get(handle);
      pending.delete(handle);
      if (!p) {
        fail(
          id,
          new BulwarkError('ERR_SESSION_UNKNOWN', 'attested session: no opened request with this handle'),
          'seal failed',
        );
        return;
      }
      clearTimeout(p.timer);
      try {
        io.write(encodeRecord(RecordKind.bytes, id, [p.opened.respond(body.subarray(4))]));
      } catch (e) {
        fail(id, e, 'seal failed');
      }
    } else if (kind === RecordKind.handle) {
      server.handle(Buffer.from(body), app).then(
        (bytes) => io.write(encodeRecord(RecordKind.bytes, id, [bytes])),
        (e: unknown) => fail(id, e, 'request failed'),
      );
    } else fail(id, new BulwarkError('ERR_INTERNAL', `unknown record kind ${kind}`), 'bad record');
  };
  // A corrupt channel cannot be resynchronised: stop, and the parent reports the enclave down.
  readRecords(io, onRecord, () => process.exit(1));
  io.on('error', () => process.exit(1));
  process.on('disconnect', () => {
    void model?.close().finally(() => process.exit(0));
    if (!model) process.exit(0);
  });
  send({
    kind: 'ready',
    signerPublicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    publicKey: server.publicKey,
    measurements: Object.fromEntries(
      Object.entries(measurements).map(([k, v]) => [k, Buffer.from(v).toString('hex')]),
    ),
  });
}

process.once('message', (m: WorkerInit) => {
  if (m?.kind !== 'init') {
    send({ kind: 'fatal', code: 'ERR_INTERNAL', message: 'software enclave: expected an init message' });
    process.exit(1);
  }
  main(m).catch((e: unknown) => {
    const err =
      e instanceof BulwarkError
        ? e
        : new BulwarkError('ERR_INTERNAL', `software enclave: ${(e as Error).message}`);
    send({ kind: 'fatal', code: err.code, message: err.message });
    process.exit(1);
  });
});
