import { AtomicFileStream, type AtomicWriteOptions, fsError } from '../core/index.js';

/**
 * A lean CSV writer for protect and reveal: rows are escaped (RFC 4180: a field holding a comma, a
 * quote or a line break is quoted, quotes doubled) and joined into ~256 KiB chunks written to an
 * {@link AtomicFileStream}, so the file appears only on commit. Protected values are base64url and
 * never need quoting; batching instead of one stream write per row keeps the writer off the profile.
 */
export class CsvOut {
  readonly path: string;
  readonly #out: AtomicFileStream;
  #buf: string[] = [];
  #size = 0;
  #failure: unknown;

  private constructor(path: string, out: AtomicFileStream) {
    this.path = path;
    this.#out = out;
    out.stream.on('error', (e) => {
      this.#failure ??= e;
    });
  }

  /** Opens `path` (through a temporary file) and writes the header. */
  static async create(
    path: string,
    columns: readonly string[],
    opts: AtomicWriteOptions = {},
  ): Promise<CsvOut> {
    const w = new CsvOut(path, await AtomicFileStream.create(path, opts));
    await w.write(columns);
    return w;
  }

  /** Writes one row (null and undefined as empty fields). */
  async write(row: readonly (string | null | undefined)[]): Promise<void> {
    let line = '';
    for (let i = 0; i < row.length; i++) {
      const v = row[i];
      if (i > 0) line += ',';
      if (v === null || v === undefined || v === '') continue;
      line += needsQuotes(v) ? `"${v.replace(/"/g, '""')}"` : v;
    }
    this.#buf.push(line);
    this.#size += line.length + 1;
    if (this.#size >= 1 << 18) await this.#flush();
  }

  async #flush(): Promise<void> {
    if (this.#failure !== undefined) throw fsError(this.#failure, this.path, 'cannot write CSV');
    if (this.#buf.length === 0) return;
    const chunk = `${this.#buf.join('\n')}\n`;
    this.#buf = [];
    this.#size = 0;
    if (!this.#out.stream.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onErr = (e: unknown): void => reject(fsError(e, this.path, 'cannot write CSV'));
        this.#out.stream.once('error', onErr);
        this.#out.stream.once('drain', () => {
          this.#out.stream.off('error', onErr);
          resolve();
        });
      });
    }
  }

  /** Flushes, fsyncs and renames the file into place. */
  async commit(): Promise<void> {
    await this.#flush();
    if (this.#failure !== undefined) {
      await this.#out.abort();
      throw fsError(this.#failure, this.path, 'cannot write CSV');
    }
    await this.#out.commit();
  }

  /** Discards the output. */
  async abort(): Promise<void> {
    this.#buf = [];
    await this.#out.abort();
  }
}

function needsQuotes(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 44 || c === 34 || c === 10 || c === 13) return true;
  }
  return false;
}
