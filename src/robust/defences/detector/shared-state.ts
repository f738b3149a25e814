/**
 * Per-client state of the stream detectors (the stateful query detector of Chen et al. 2019 and PRADA
 * of Juuti et al. 2019) kept in Redis, so that several gateway replicas see one client's whole query
 * stream. Kept in memory by each replica instead, an attacker spreading its queries over N replicas
 * would show each of them only a 1/N sample, which weakens both detectors.
 *
 * Each query reads the client's state in one round trip, judges the request's rows with exactly the
 * detector's own code (`advance` on a state rebuilt from Redis, so one replica with a shared store
 * answers as one with memory state), then appends what changed in one MULTI transaction. Bounded and
 * expiring: the stateful history is a list trimmed to `history` embeddings; PRADA's distances a list
 * trimmed to `window`, each class's growing set at most `maxGrowing` entries; every key of a client
 * expires `ttlSeconds` after its last query. Client ids never reach Redis: keys carry a SHA-256 of
 * them. Replicas judging one client at the same moment each append to the same lists; the lists then
 * hold both queries, in Redis's order (never a lost update of the history itself).
 *
 * Fail closed: when Redis cannot be reached, or holds entries of another shape, the call throws
 * ERR_DETECTOR_STORE_UNAVAILABLE (the gateway answers 503) instead of judging without history.
 *
 * Layout (binary little-endian values; `{h}` a hash tag so a client's keys share a cluster slot):
 *   <prefix>stateful:{h}      list of float32[dims] embeddings, oldest first
 *   <prefix>prada:{h}:d       list of float64 distances, oldest first
 *   <prefix>prada:{h}:g<c>    list of float32[inputs] query ‖ float64 d_min (NaN for the first) ‖
 *                             float64 T_c after it joined, in joining order
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { BulwarkError, requireInteger } from '../../../core/index.js';
import type { PradaClientState, PradaDetector } from './prada.js';
import type { StatefulDetector } from './stateful.js';
import type { QueryVerdict } from './stream.js';

/** Options of {@link RedisStreamState}. */
export interface RedisStreamStateOptions {
  /** Prefix of every key (e.g. `bulwark:det:fraud:`: one per model). */
  keyPrefix: string;
  /** A client's keys expire this long after its last query (default 86,400 s). */
  ttlSeconds?: number;
}

function unavailable(cause: unknown, what: string): BulwarkError {
  return new BulwarkError(
    'ERR_DETECTOR_STORE_UNAVAILABLE',
    `the detectors' shared state store cannot ${what}; request denied`,
    { cause },
  );
}

function malformed(key: string): BulwarkError {
  return new BulwarkError(
    'ERR_DETECTOR_STORE_UNAVAILABLE',
    `the detectors' shared state holds an entry of another shape (${key.split(':').slice(-2).join(':')}); request denied`,
    { details: { reason: 'malformed' } },
  );
}

/** Stream detectors' per-client state in Redis (see the module comment). */
export class RedisStreamState {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #ttlMs: number;
  /** Recently seen client hashes: hashing per request is avoidable work on the hot path. */
  readonly #hashes = new Map<string, string>();

  constructor(redis: Redis, options: RedisStreamStateOptions) {
    if (typeof options.keyPrefix !== 'string' || options.keyPrefix.length === 0)
      throw new BulwarkError('ERR_INVALID_ARGUMENT', 'keyPrefix: expected a non-empty string', {
        details: { parameter: 'keyPrefix' },
      });
    this.#redis = redis;
    this.#prefix = options.keyPrefix;
    this.#ttlMs = requireInteger('ttlSeconds', options.ttlSeconds ?? 86_400, 1, 10 * 365 * 86_400) * 1000;
  }

  #hash(client: string): string {
    let h = this.#hashes.get(client);
    if (h === undefined) {
      if (client.length === 0)
        throw new BulwarkError('ERR_INVALID_ARGUMENT', 'client: expected a non-empty client id', {
          details: { parameter: 'client' },
        });
      h = createHash('sha256').update(client).digest('base64url').slice(0, 22);
      if (this.#hashes.size >= 10_000) this.#hashes.delete(this.#hashes.keys().next().value as string);
      this.#hashes.set(client, h);
    }
    return h;
  }

  /** The key of a client's stateful history (exported for tests and operators). */
  statefulKey(client: string): string {
    return `${this.#prefix}stateful:{${this.#hash(client)}}`;
  }

  /** The keys of a client's PRADA state: distances, then the growing set of each class. */
  pradaKeys(client: string, classes: number): { distances: string; growing: string[] } {
    const base = `${this.#prefix}prada:{${this.#hash(client)}}`;
    return {
      distances: `${base}:d`,
      growing: Array.from({ length: classes }, (_, c) => `${base}:g${c}`),
    };
  }

  async #read(keys: readonly string[]): Promise<Buffer[][]> {
    let res: [Error | null, unknown][] | null;
    try {
      const p = this.#redis.pipeline();
      for (const k of keys) p.lrangeBuffer(k, 0, -1);
      res = await p.exec();
    } catch (e) {
      throw unavailable(e, 'be read');
    }
    if (res === null) throw unavailable(null, 'be read');
    return res.map(([err, v]) => {
      if (err) throw unavailable(err, 'be read');
      return v as Buffer[];
    });
  }

  async #write(build: (m: ReturnType<Redis['multi']>) => void): Promise<void> {
    let res: [Error | null, unknown][] | null;
    try {
      const m = this.#redis.multi();
      build(m);
      res = await m.exec();
    } catch (e) {
      throw unavailable(e, 'be written');
    }
    if (res === null) throw unavailable(null, 'be written');
    for (const [err] of res) if (err) throw unavailable(err, 'be written');
  }

  /**
   * Records `rows` queries (`x`, row-major) of `client` with the stateful detector and returns a
   * verdict per row, as `det.observe` would with a history shared by every replica.
   */
  async observeStateful(
    det: StatefulDetector,
    client: string,
    x: Float32Array,
    rows: number,
  ): Promise<QueryVerdict[]> {
    const d = det.inputs;
    const m = det.dims;
    if (x.length !== rows * d)
      throw new BulwarkError('ERR_SHAPE_MISMATCH', `x: ${x.length} values for ${rows} rows of ${d} features`);
    const key = this.statefulKey(client);
    const [list] = (await this.#read([key])) as [Buffer[]];
    const st = det.newState();
    const n = Math.min(list.length, det.history);
    for (let i = 0; i < n; i++) {
      const b = list[list.length - n + i] as Buffer;
      if (b.length !== 4 * m) throw malformed(key);
      for (let j = 0; j < m; j++) st.buf[i * m + j] = b.readFloatLE(4 * j);
    }
    st.count = n;
    const verdicts: QueryVerdict[] = [];
    let cleared = false;
    let added: Buffer[] = [];
    for (let r = 0; r < rows; r++) {
      const slot = (st.count % det.history) * m;
      const v = det.advance(st, x.subarray(r * d, (r + 1) * d));
      verdicts.push(v);
      if (v.flagged) {
        // The detector cleared the history (Chen et al.: each detection counts once).
        cleared = true;
        added = [];
      } else {
        const b = Buffer.alloc(4 * m);
        for (let j = 0; j < m; j++) b.writeFloatLE(st.buf[slot + j] as number, 4 * j);
        added.push(b);
      }
    }
    await this.#write((t) => {
      if (cleared) t.del(key);
      if (added.length > 0) {
        t.rpush(key, ...added);
        t.ltrim(key, -det.history, -1);
      }
      t.pexpire(key, this.#ttlMs);
    });
    return verdicts;
  }

  /**
   * Records `rows` queries of `client` answered with classes `predicted` with PRADA and returns a
   * verdict per row, as `det.observe` would with a state shared by every replica.
   */
  async observePrada(
    det: PradaDetector,
    client: string,
    x: Float32Array,
    predicted: ArrayLike<number>,
    rows: number,
  ): Promise<QueryVerdict[]> {
    const d = det.inputs;
    if (x.length !== rows * d)
      throw new BulwarkError('ERR_SHAPE_MISMATCH', `x: ${x.length} values for ${rows} rows of ${d} features`);
    const keys = this.pradaKeys(client, det.classes);
    const wanted = [...new Set(Array.from({ length: rows }, (_, r) => predicted[r] as number))];
    for (const c of wanted) requireInteger('predicted', c, 0, det.classes - 1);
    const [dist, ...groups] = await this.#read([
      keys.distances,
      ...wanted.map((c) => keys.growing[c] as string),
    ]);
    const st: PradaClientState = det.newState();
    for (const b of (dist as Buffer[]).slice(-det.window)) {
      if (b.length !== 8) throw malformed(keys.distances);
      st.distances.push(b.readDoubleLE(0));
    }
    st.sorted = [...st.distances].sort((a, b) => a - b);
    const entry = 4 * d + 16;
    wanted.forEach((c, i) => {
      const g = st.growing[c] as Float32Array[];
      const by = st.grownBy[c] as number[];
      for (const b of (groups[i] as Buffer[]).slice(0, det.maxGrowing)) {
        if (b.length !== entry) throw malformed(keys.growing[c] as string);
        const u = new Float32Array(d);
        for (let j = 0; j < d; j++) u[j] = b.readFloatLE(4 * j);
        g.push(u);
        const dmin = b.readDoubleLE(4 * d);
        if (!Number.isNaN(dmin)) by.push(dmin);
        st.thresholds[c] = b.readDoubleLE(4 * d + 8);
      }
    });
    const verdicts: QueryVerdict[] = [];
    const newDistances: Buffer[] = [];
    const newEntries = new Map<number, Buffer[]>();
    for (let r = 0; r < rows; r++) {
      const c = predicted[r] as number;
      const g = st.growing[c] as Float32Array[];
      const by = st.grownBy[c] as number[];
      const before = g.length;
      const byBefore = by.length;
      verdicts.push(det.advance(st, x.subarray(r * d, (r + 1) * d), c));
      if (before > 0) {
        const b = Buffer.alloc(8);
        b.writeDoubleLE(st.distances[st.distances.length - 1] as number, 0);
        newDistances.push(b);
      }
      if (g.length > before) {
        const b = Buffer.alloc(entry);
        const u = g[g.length - 1] as Float32Array;
        for (let j = 0; j < d; j++) b.writeFloatLE(u[j] as number, 4 * j);
        b.writeDoubleLE(by.length > byBefore ? (by[by.length - 1] as number) : Number.NaN, 4 * d);
        b.writeDoubleLE(st.thresholds[c] as number, 4 * d + 8);
        const list = newEntries.get(c) ?? [];
        list.push(b);
        newEntries.set(c, list);
      }
    }
    await this.#write((t) => {
      if (newDistances.length > 0) {
        t.rpush(keys.distances, ...newDistances);
        t.ltrim(keys.distances, -det.window, -1);
      }
      for (const [c, list] of newEntries) {
        const k = keys.growing[c] as string;
        t.rpush(k, ...list);
        // The set only grows and stops at maxGrowing: the earliest entries are the ones to keep.
        t.ltrim(k, 0, det.maxGrowing - 1);
      }
      // Every key of the client lives as long as its latest query.
      t.pexpire(keys.distances, this.#ttlMs);
      for (const k of keys.growing) t.pexpire(k, this.#ttlMs);
    });
    return verdicts;
  }

  /** Forgets a client's state in both detectors. */
  async reset(client: string, prada?: PradaDetector): Promise<void> {
    const keys = [this.statefulKey(client)];
    if (prada) {
      const p = this.pradaKeys(client, prada.classes);
      keys.push(p.distances, ...p.growing);
    }
    await this.#write((t) => {
      t.del(...keys);
    });
  }
}
