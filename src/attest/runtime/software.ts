/**
 * The software enclave runtime (parent side): forks `software-worker` as an isolated child process,
 * hands it the model bytes, and relays attestation and session frames to it over IPC. The keys are
 * generated in the child and never cross the IPC channel; only the public halves come back.
 *
 * SOFTWARE MODE GIVES NO HARDWARE GUARANTEE: the child is an ordinary process of the same host. Its
 * attestations are signed by a local key and marked `hardware: false`; any policy that requires
 * hardware refuses them. Use it to run and test the protocol end to end, never as a substitute for a TEE.
 */
import { type ChildProcess, fork } from 'node:child_process';
import type { Socket } from 'node:net';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BulwarkError,
  type ErrorCode,
  errorCodes,
  requireInteger,
  requireNonEmptyString,
} from '../../core/index.js';
import type { AttestedEndpoint } from '../session/http.js';
import {
  encodeRecord,
  RECORD_FD,
  RecordKind,
  readRecords,
  type WorkerInit,
  type WorkerReply,
  type WorkerRequest,
} from './protocol.js';

export interface SoftwareEnclaveOptions {
  /** The ONNX model the enclave serves (null: attestation and sessions only, every inference refused). */
  model: Uint8Array | null;
  /** The module id in the attestations (default `bulwark-software`). */
  moduleId?: string;
  /** How long to wait for the worker to start, and for each answer (default 30,000 ms). */
  timeoutMs?: number;
  /** Further self-reported measurements (name → hex), e.g. the digests of the models a gateway serves. */
  measurements?: Readonly<Record<string, string>>;
  /** Attestation lifetime, session lifetime and session cap of the worker's session server. */
  session?: { attestationTtlSeconds?: number; sessionTtlSeconds?: number; maxSessions?: number };
  /** How long an `open`ed request may wait for `respond` before the worker forgets it (default 60,000 ms). */
  pendingTtlMs?: number;
}

/** A request opened in the worker: its plaintext, and the call that seals the answer in the worker. */
export interface RemoteOpenedRequest {
  readonly plaintext: Uint8Array;
  readonly sessionId: string;
  readonly seq: bigint;
  respond(plaintext: Uint8Array): Promise<Uint8Array>;
}

function workerEntry(): { path: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  const ext = extname(here);
  const path = join(dirname(here), `software-worker${ext}`);
  // From source (tests, benchmarks) the worker is TypeScript: load it through tsx, as the parent is.
  return { path, execArgv: ext === '.ts' ? ['--import', import.meta.resolve('tsx')] : [] };
}

/** An answer from the worker: an IPC reply (attestations) or a record (session frames). */
type Answer = WorkerReply | { kind: 'record'; record: number; body: Buffer };

const unavailable = (message: string) =>
  new BulwarkError('ERR_ENCLAVE_UNAVAILABLE', `software enclave: ${message}`);

const knownCode = (code: string): ErrorCode => (code in errorCodes ? (code as ErrorCode) : 'ERR_INTERNAL');

export class SoftwareEnclave implements AttestedEndpoint {
  /** The worker's attestation signer key (SPKI PEM): pin it in the client's `roots.software`. */
  readonly signerPublicKey: string;
  /** The HPKE public key the attestations bind. */
  readonly publicKey: Uint8Array;
  /** The worker's self-measurements (hex SHA-384 of its code file and of the model). */
  readonly measurements: Readonly<Record<string, string>>;
  readonly #child: ChildProcess;
  readonly #io: Socket;
  readonly #timeout: number;
  readonly #pending = new Map<
    number,
    { resolve: (b: Answer) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  #next = 1;
  #dead: BulwarkError | undefined;

  private constructor(child: ChildProcess, ready: Extract<WorkerReply, { kind: 'ready' }>, timeout: number) {
    this.#child = child;
    this.#io = child.stdio[RECORD_FD] as Socket;
    this.#timeout = timeout;
    this.signerPublicKey = ready.signerPublicKey;
    this.publicKey = ready.publicKey;
    this.measurements = ready.measurements;
    child.on('message', (m: WorkerReply) => {
      if (m.kind !== 'result') return;
      const p = this.#take(m.id);
      if (!p) return;
      if (m.ok) p.resolve(m);
      else p.reject(new BulwarkError(knownCode(m.code), m.message));
    });
    const onRecord = (record: number, id: number, body: Buffer): void => {
      const p = this.#take(id);
      if (!p) return;
      if (record !== RecordKind.error) {
        p.resolve({ kind: 'record', record, body });
        return;
      }
      let e: { code?: unknown; message?: unknown } = {};
      try {
        e = JSON.parse(body.toString('utf8')) as typeof e;
      } catch {
        // a garbled error record: reported as internal below
      }
      p.reject(
        new BulwarkError(
          knownCode(typeof e.code === 'string' ? e.code : 'ERR_INTERNAL'),
          typeof e.message === 'string' ? e.message : 'software enclave: failed',
        ),
      );
    };
    readRecords(this.#io, onRecord, (e) => {
      this.#fail(unavailable(`corrupt record channel (${e.message})`));
      child.kill();
    });
    this.#io.on('error', (e) => this.#fail(unavailable(`record channel failed: ${e.message}`)));
    child.on('exit', (code, signal) =>
      this.#fail(unavailable(`the worker exited (${signal ?? `code ${code}`})`)),
    );
  }

  #take(id: number) {
    const p = this.#pending.get(id);
    if (!p) return undefined;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    return p;
  }

  /** Forks the worker, sends it the model and waits until it has made its keys and loaded the model. */
  static async start(options: SoftwareEnclaveOptions): Promise<SoftwareEnclave> {
    const moduleId = requireNonEmptyString('moduleId', options.moduleId ?? 'bulwark-software');
    const timeout = requireInteger('timeoutMs', options.timeoutMs ?? 30_000, 1);
    const pendingTtlMs = requireInteger('pendingTtlMs', options.pendingTtlMs ?? 60_000, 1);
    const extra = options.measurements ?? {};
    for (const [k, v] of Object.entries(extra)) {
      if (k === 'runtime' || k === 'model' || typeof v !== 'string' || !/^([0-9a-f]{2})+$/.test(v))
        throw new BulwarkError(
          'ERR_INVALID_ARGUMENT',
          `measurements.${k}: expected lowercase hex (runtime and model are reserved)`,
          {
            details: { parameter: `measurements.${k}` },
          },
        );
    }
    if (options.model !== null && !(options.model instanceof Uint8Array)) {
      throw new BulwarkError('ERR_INVALID_ARGUMENT', 'model: expected the ONNX bytes or null', {
        details: { parameter: 'model' },
      });
    }
    const { path, execArgv } = workerEntry();
    let child: ChildProcess;
    try {
      child = fork(path, [], {
        execArgv,
        serialization: 'advanced',
        // fd 3: the IPC channel (start-up, attestations); fd 4 (RECORD_FD): the session records.
        stdio: ['ignore', 'ignore', 'inherit', 'ipc', 'pipe'],
      });
    } catch (e) {
      throw unavailable(`cannot start the worker: ${(e as Error).message}`);
    }
    const ready = await new Promise<Extract<WorkerReply, { kind: 'ready' }>>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill();
        reject(unavailable(`the worker did not start within ${timeout} ms`));
      }, timeout);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(unavailable(e.message));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(unavailable(`the worker exited during start-up (code ${code})`));
      });
      child.once('message', (m: WorkerReply) => {
        clearTimeout(timer);
        if (m.kind === 'ready') resolve(m);
        else {
          child.kill();
          const code =
            m.kind === 'fatal' && m.code in errorCodes ? (m.code as ErrorCode) : 'ERR_ENCLAVE_UNAVAILABLE';
          reject(
            new BulwarkError(
              code,
              m.kind === 'fatal' ? m.message : 'software enclave: unexpected first message',
            ),
          );
        }
      });
      const init: WorkerInit = {
        kind: 'init',
        moduleId,
        model: options.model,
        threads: 1,
        measurements: { ...extra },
        pendingTtlMs,
        ...(options.session ? { session: { ...options.session } } : {}),
      };
      child.send(init);
    });
    child.removeAllListeners('exit');
    child.removeAllListeners('error');
    child.on('error', () => undefined);
    return new SoftwareEnclave(child, ready, timeout);
  }

  /** False once the worker has died or was closed (its keys are gone: attest again after a restart). */
  get alive(): boolean {
    return this.#dead === undefined;
  }

  /** The worker's process id (it is a separate process: a test checks the keys are not in this one). */
  get pid(): number {
    return this.#child.pid ?? -1;
  }

  #await(id: number): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(unavailable(`no answer within ${this.#timeout} ms`));
      }, this.#timeout);
      this.#pending.set(id, { resolve, reject, timer });
    });
  }

  /** One record to the worker and its answer record (one pipe write each way). */
  async #record(kind: RecordKind, parts: readonly Uint8Array[]): Promise<{ record: number; body: Buffer }> {
    if (this.#dead) throw this.#dead;
    const id = this.#nextId();
    const answer = this.#await(id);
    this.#io.write(encodeRecord(kind, id, parts));
    const r = await answer;
    if (r.kind !== 'record') throw unavailable('unexpected answer');
    return r;
  }

  async #bytes(kind: RecordKind, parts: readonly Uint8Array[]): Promise<Uint8Array> {
    const r = await this.#record(kind, parts);
    if (r.record !== RecordKind.bytes) throw unavailable('unexpected answer');
    return r.body;
  }

  #nextId(): number {
    const id = this.#next;
    this.#next = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  async attestation(nonce: Uint8Array): Promise<Uint8Array> {
    if (this.#dead) throw this.#dead;
    const id = this.#nextId();
    const answer = this.#await(id);
    this.#child.send({ kind: 'attestation', id, nonce } satisfies WorkerRequest, (e) => {
      if (e) this.#fail(unavailable(`IPC failed: ${e.message}`));
    });
    const r = await answer;
    if (r.kind !== 'result' || !r.ok) throw unavailable('unexpected answer');
    return r.bytes;
  }

  /** Opens `frame`, runs the worker's own model on it and seals the answer, all in the worker. */
  handle(frame: Uint8Array): Promise<Uint8Array> {
    return this.#bytes(RecordKind.handle, [frame]);
  }

  /**
   * Opens a request frame in the worker and returns its plaintext to this process, for a host that
   * runs its own pipeline on it (the gateway); `respond` seals the answer in the worker. The session
   * keys stay in the worker; the plaintext is in this process from `open` to `respond`.
   */
  async open(frame: Uint8Array): Promise<RemoteOpenedRequest> {
    const r = await this.#record(RecordKind.open, [frame]);
    if (r.record !== RecordKind.opened || r.body.length < 28) throw unavailable('unexpected answer');
    const handle = Buffer.from(r.body.subarray(0, 4));
    return {
      plaintext: r.body.subarray(28),
      sessionId: r.body.toString('hex', 12, 28),
      seq: r.body.readBigUInt64BE(4),
      respond: (plaintext: Uint8Array) => this.#bytes(RecordKind.seal, [handle, plaintext]),
    };
  }

  #fail(e: BulwarkError): void {
    this.#dead ??= e;
    for (const [, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.#pending.clear();
  }

  /** Stops the worker (its keys die with it). */
  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.#child.once('exit', () => r()));
    this.#child.disconnect();
    const t = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
    this.#fail(unavailable('closed'));
  }
}
