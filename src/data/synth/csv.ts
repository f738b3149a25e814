/**
 * Streams generated transactions to a CSV file (RFC 4180: comma-separated, CRLF line ends, fields
 * quoted only when they hold a comma, quote, CR or LF, with quotes doubled) through an
 * {@link AtomicFileStream}: the file appears complete at its path or not at all, whether generation
 * fails, the disk fills, or the run is cancelled.
 */
import type { WriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { AtomicFileStream, BulwarkError, invalidArgument, requireNonEmptyString } from '../../core/index.js';
import { type Emitted, simulate, TRANSACTION_COLUMNS } from './generator.js';
import { resolveSynthOptions, type SynthOptions } from './options.js';

/** Options of {@link writeTransactionsCsv}: the generator's, plus output options. */
export interface WriteTransactionsCsvOptions extends SynthOptions {
  /** Add a last column `scenario` naming the pattern behind each row (for analysis; never train on it). */
  includeScenario?: boolean;
  /** Refuse with `ERR_FILE_EXISTS` when the file exists (default: replace it atomically). */
  noClobber?: boolean;
  /** Cancels the write: the temporary file is removed and `ERR_ABORTED` thrown. */
  signal?: AbortSignal;
}

/** What {@link writeTransactionsCsv} wrote. */
export interface SynthSummary {
  path: string;
  rows: number;
  fraudRows: number;
  /** `fraudRows / rows`. */
  fraudRate: number;
  /** The seed, as decimal text (it may be a bigint). */
  seed: string;
  columns: number;
  bytes: number;
  seconds: number;
  rowsPerSecond: number;
}

/** Called with rows written so far and the total, every few thousand rows and at the end. */
export type SynthProgressCallback = (done: number, total: number) => void;

/** Bytes per chunk handed to the stream (a chunk is sent when less than one row's room is left). */
const CHUNK_BYTES = 1 << 20;
/** Room kept for one row: far above the longest row the generator can produce (about 450 bytes). */
const ROW_ROOM = 4096;
const COMMA = 44;
const DOT = 46;
const MINUS = 45;
const HEX = Buffer.from('0123456789abcdef', 'latin1');
const POW10 = [1, 10, 100, 1000, 10000, 100000, 1000000];

/**
 * Writes CSV text as bytes straight into a chunk buffer: building a string per row and encoding it
 * costs several times more than generating the row. Numbers are written with exactly the rounding of
 * {@link fixed}, so the CSV text equals the records' values.
 */
class ByteSink {
  buf: Buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  pos = 0;

  /** Text known to be ASCII in the common case; falls back to UTF-8 otherwise. */
  str(s: string): void {
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 127) {
        this.pos = p;
        this.pos += b.write(s.slice(i), p, 'utf8');
        return;
      }
      b[p++] = c;
    }
    this.pos = p;
  }

  bytes(u: Uint8Array): void {
    this.buf.set(u, this.pos);
    this.pos += u.length;
  }

  byte(c: number): void {
    this.buf[this.pos++] = c;
  }

  /** A non-negative integer below 2^53. */
  uint(n: number): void {
    const b = this.buf;
    let len = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) len++;
    let p = this.pos + len;
    this.pos = p;
    let x = n;
    do {
      const q = Math.floor(x / 10);
      b[--p] = 48 + (x - q * 10);
      x = q;
    } while (x > 0);
  }

  /** `x` rounded half away from zero to `d` decimals, as {@link fixed} writes it. */
  fixed(x: number, d: number): void {
    const p10 = POW10[d] as number;
    const n = Math.round(Math.abs(x) * p10);
    if (x < 0 && n !== 0) this.byte(MINUS);
    const ip = Math.floor(n / p10);
    this.uint(ip);
    if (d === 0) return;
    this.byte(DOT);
    let frac = n - ip * p10;
    const b = this.buf;
    for (let k = this.pos + d - 1; k >= this.pos; k--) {
      const q = Math.floor(frac / 10);
      b[k] = 48 + (frac - q * 10);
      frac = q;
    }
    this.pos += d;
  }

  two(n: number): void {
    const q = Math.floor(n / 10);
    this.buf[this.pos++] = 48 + q;
    this.buf[this.pos++] = 48 + (n - q * 10);
  }

  hex8(x: number): void {
    const b = this.buf;
    for (let k = 7; k >= 0; k--) {
      b[this.pos + k] = HEX[x & 15] as number;
      x >>>= 4;
    }
    this.pos += 8;
  }

  /** Hands the filled part over (the stream keeps it until written) and starts a new chunk. */
  take(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(CHUNK_BYTES);
    this.pos = 0;
    return out;
  }
}

const DAY = 86_400_000;
const dayBytes = new Map<number, Uint8Array>();

/** Same text as {@link isoLocal}: `YYYY-MM-DDTHH:MM:SS±HH:MM`. */
function writeTimestamp(sink: ByteSink, utcMs: number, offsetMin: number): void {
  const local = Math.floor(utcMs / 1000) * 1000 + offsetMin * 60_000;
  const day = Math.floor(local / DAY);
  let d = dayBytes.get(day);
  if (d === undefined) {
    d = Buffer.from(new Date(day * DAY).toISOString().slice(0, 10), 'latin1');
    if (dayBytes.size > 4096) dayBytes.clear();
    dayBytes.set(day, d);
  }
  sink.bytes(d);
  sink.byte(84); // T
  const sec = Math.floor((local - day * DAY) / 1000);
  const h = Math.floor(sec / 3600);
  const m = Math.floor((sec - h * 3600) / 60);
  sink.two(h);
  sink.byte(58);
  sink.two(m);
  sink.byte(58);
  sink.two(sec - h * 3600 - m * 60);
  const a = Math.abs(offsetMin);
  sink.byte(offsetMin < 0 ? MINUS : 43);
  sink.two(Math.floor(a / 60));
  sink.byte(58);
  sink.two(a % 60);
}

function writeRow(sink: ByteSink, e: Emitted, withScenario: boolean): void {
  const p = e.p;
  sink.str('tx_');
  sink.hex8(e.idHi);
  sink.hex8(e.idLo);
  sink.byte(COMMA);
  writeTimestamp(sink, p.t, e.offsetMin);
  sink.byte(COMMA);
  sink.bytes(p.ch.csvBytes);
  sink.byte(COMMA);
  sink.bytes(p.m.csvBytes);
  sink.byte(COMMA);
  sink.fixed(e.amount, e.minor);
  sink.byte(COMMA);
  sink.str(p.currency);
  sink.byte(COMMA);
  sink.str(p.channel);
  sink.byte(COMMA);
  sink.fixed(p.lat, 4);
  sink.byte(COMMA);
  sink.fixed(p.lon, 4);
  sink.byte(COMMA);
  if (p.device !== null) sink.str(p.device);
  sink.byte(COMMA);
  if (p.ip !== null) sink.str(p.ip);
  sink.byte(COMMA);
  sink.uint(e.localHour);
  sink.byte(COMMA);
  sink.fixed(e.distHome, 1);
  sink.byte(COMMA);
  sink.fixed(e.kmLast, 1);
  sink.byte(COMMA);
  sink.fixed(e.minLast, 1);
  sink.byte(COMMA);
  sink.uint(e.count1h);
  sink.byte(COMMA);
  sink.fixed(e.amountRatio, 3);
  sink.byte(COMMA);
  sink.uint(e.newDevice);
  sink.byte(COMMA);
  sink.uint(e.newMerchant);
  sink.byte(COMMA);
  sink.uint(p.fraud);
  if (withScenario) {
    sink.byte(COMMA);
    sink.str(p.scenario);
  }
  sink.byte(13);
  sink.byte(10);
}

function aborted(path: string): BulwarkError {
  return new BulwarkError('ERR_ABORTED', `cancelled; ${path} was not written`, { details: { path } });
}

/** Resolves when the stream drains; rejects on its error. */
function drained(ws: WriteStream, failed: () => Error | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      ws.off('drain', done);
      ws.off('error', done);
      ws.off('close', done);
      const e = failed();
      if (e) reject(e);
      else resolve();
    };
    ws.on('drain', done);
    ws.on('error', done);
    ws.on('close', done);
  });
}

/**
 * Generates transactions (see {@link generateTransactions}) and streams them to a CSV file at `path`
 * with backpressure, so memory stays bounded for any number of rows. Every option is validated before
 * the file is created; on any failure or cancellation no file is left at `path` (an existing file
 * there is kept as it was).
 *
 * @example
 * ```ts
 * const s = await writeTransactionsCsv('tx.csv', { rows: 1_000_000, fraudRate: 0.01, seed: 42 },
 *   (done, total) => bar.update(done));
 * console.log(`${s.rows} rows, ${s.fraudRows} fraud, ${Math.round(s.rowsPerSecond)} rows/s`);
 * ```
 */
export async function writeTransactionsCsv(
  path: string,
  options: WriteTransactionsCsvOptions,
  onProgress?: SynthProgressCallback,
): Promise<SynthSummary> {
  requireNonEmptyString('path', path);
  const o = resolveSynthOptions(options);
  const withScenario = options.includeScenario === true;
  if (onProgress !== undefined && typeof onProgress !== 'function') {
    throw invalidArgument('onProgress', 'a function', onProgress);
  }
  const signal = options.signal;
  try {
    if ((await stat(path)).isDirectory()) throw invalidArgument('path', 'a file path, not a folder', path);
  } catch (e) {
    if (e instanceof BulwarkError) throw e;
    // Not there yet: the usual case.
  }
  if (signal?.aborted) throw aborted(path);
  const t0 = performance.now();
  const out = await AtomicFileStream.create(path, { noClobber: options.noClobber === true });
  const ws = out.stream;
  let streamError: Error | undefined;
  const onError = (e: Error): void => {
    streamError ??= e;
  };
  ws.on('error', onError);
  let rows = 0;
  let fraudRows = 0;
  let bytes = 0;
  try {
    const sink = new ByteSink();
    sink.str(`${[...TRANSACTION_COLUMNS, ...(withScenario ? ['scenario'] : [])].join(',')}\r\n`);
    for (const e of simulate(o)) {
      writeRow(sink, e, withScenario);
      fraudRows += e.p.fraud;
      rows++;
      if (sink.pos > CHUNK_BYTES - ROW_ROOM) {
        const chunk = sink.take();
        bytes += chunk.length;
        const ok = ws.write(chunk);
        if (!ok) await drained(ws, () => streamError);
        else await new Promise<void>((resolve) => setImmediate(resolve)); // let signals and timers run
        if (streamError) throw streamError;
        if (signal?.aborted) throw aborted(path);
        onProgress?.(rows, o.rows);
      }
    }
    if (sink.pos > 0) {
      const chunk = sink.take();
      bytes += chunk.length;
      ws.write(chunk);
    }
    if (streamError) throw streamError;
    if (signal?.aborted) throw aborted(path);
    ws.off('error', onError);
    await out.commit();
  } catch (e) {
    ws.off('error', onError);
    await out.abort();
    if (e instanceof BulwarkError) throw e;
    throw new BulwarkError(
      'ERR_IO',
      `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      {
        cause: e,
        details: { path },
      },
    );
  }
  onProgress?.(rows, o.rows);
  const seconds = (performance.now() - t0) / 1000;
  return {
    path,
    rows,
    fraudRows,
    fraudRate: fraudRows / rows,
    seed: String(o.seed),
    columns: TRANSACTION_COLUMNS.length + (withScenario ? 1 : 0),
    bytes,
    seconds,
    rowsPerSecond: rows / seconds,
  };
}
