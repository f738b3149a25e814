import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { SeededRng } from '../../src/core/index.js';
import {
  Dataset,
  encodeIdx,
  formatOf,
  parseIdx,
  readDataset,
  readIdx,
  readParquet,
  writeDataset,
  writeParquet,
} from '../../src/data/index.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-pq-'));

describe('Parquet', () => {
  it('write + read round trip: numbers, strings, timestamps, missing values', async () => {
    const rng = new SeededRng(7);
    const n = 2500;
    const ds = new Dataset([
      {
        name: 'x',
        type: 'number',
        values: Float64Array.from({ length: n }, (_, i) => (i % 97 === 0 ? Number.NaN : rng.normal(0, 1e6))),
      },
      {
        name: 's',
        type: 'string',
        values: Array.from({ length: n }, (_, i) => (i % 13 === 0 ? null : `v${rng.int(50)} é€`)),
      },
      {
        name: 't',
        type: 'timestamp',
        values: Float64Array.from({ length: n }, (_, i) =>
          i % 31 === 0 ? Number.NaN : Date.UTC(2024, 0, 1) + rng.int(1e9),
        ),
      },
    ]);
    const p = join(dir, 'rt.parquet');
    await writeParquet(p, ds);
    const back = await readParquet(p);
    assert.deepEqual(back.columnNames, ['x', 's', 't']);
    assert.deepEqual(
      back.columns.map((c) => c.type),
      ['number', 'string', 'timestamp'],
    );
    assert.deepEqual(back, ds);
    const some = await readParquet(p, { columns: ['t'] });
    assert.deepEqual(some.columnNames, ['t']);
    await assert.rejects(readParquet(p, { columns: ['nope'] }), { code: 'ERR_COLUMN_NOT_FOUND' });
  });

  it('reads integer, boolean and string columns written by another writer', async () => {
    const buf = parquetWriteBuffer({
      columnData: [
        { name: 'i32', data: [1, 2, null], type: 'INT32' },
        { name: 'i64', data: [10n, 20n, 30n], type: 'INT64' },
        { name: 'b', data: [true, false, true], type: 'BOOLEAN' },
        { name: 'f', data: [1.5, 2.5, 3.5], type: 'FLOAT' },
      ],
    });
    const p = join(dir, 'other.parquet');
    writeFileSync(p, new Uint8Array(buf));
    const ds = await readParquet(p);
    assert.deepEqual([...ds.numbers('i32')].slice(0, 2), [1, 2]);
    assert.ok(Number.isNaN(ds.numbers('i32')[2]!));
    assert.deepEqual([...ds.numbers('i64')], [10, 20, 30]);
    assert.deepEqual([...ds.numbers('b')], [1, 0, 1]);
    assert.deepEqual([...ds.numbers('f')], [1.5, 2.5, 3.5]);
  });

  it('INT64 values beyond 2^53 are read exactly, as decimal strings (a double rounded them)', async () => {
    const buf = parquetWriteBuffer({
      columnData: [
        { name: 'id', data: [4111111111111111n, 9007199254740993n, null], type: 'INT64' },
        { name: 'small', data: [1n, -2n, 3n], type: 'INT64' },
      ],
    });
    const p = join(dir, 'int64.parquet');
    writeFileSync(p, new Uint8Array(buf));
    const ds = await readParquet(p);
    assert.deepEqual(ds.strings('id'), ['4111111111111111', '9007199254740993', null]);
    assert.deepEqual([...ds.numbers('small')], [1, -2, 3]);
  });

  it('a timestamp outside the years 0000-9999 is ERR_PARQUET_READ naming row and column', async () => {
    // Beyond a Date's range it was read as missing; within it but past 9999 it could not be written
    // back as ISO 8601 text (writeCsv threw a RangeError past the Date range).
    for (const [ms, bad] of [
      [Date.parse('9999-12-31T23:59:59.999Z'), false],
      [Date.parse('0000-01-01'), false],
      [Date.parse('9999-12-31T23:59:59.999Z') + 1, true],
      [9e15, true],
    ] as const) {
      const buf = parquetWriteBuffer({
        columnData: [{ name: 't', data: [0n, BigInt(ms)] }],
        schema: [
          { name: 'root', num_children: 1 },
          { name: 't', type: 'INT64', repetition_type: 'REQUIRED', converted_type: 'TIMESTAMP_MILLIS' },
        ],
      } as never);
      const p = join(dir, `ts-${ms}.parquet`);
      writeFileSync(p, new Uint8Array(buf));
      if (bad)
        await assert.rejects(readParquet(p), {
          code: 'ERR_PARQUET_READ',
          message: /row 2 column "t": a timestamp outside the years 0000-9999/,
        });
      else assert.deepEqual([...(await readParquet(p)).timestamps('t')], [0, ms]);
    }
  });

  it('string bytes that are not UTF-8 are ERR_PARQUET_READ naming row and column (were U+FFFD)', async () => {
    const buf = parquetWriteBuffer({
      columnData: [
        { name: 'name', data: [Uint8Array.of(0x61), Uint8Array.of(0x62, 0xff)], type: 'BYTE_ARRAY' },
      ],
    });
    const p = join(dir, 'bad-utf8.parquet');
    writeFileSync(p, new Uint8Array(buf));
    await assert.rejects(readParquet(p), {
      code: 'ERR_PARQUET_READ',
      message: 'bad-utf8.parquet: row 2 column "name": invalid UTF-8',
    });
  });

  it('a footer that lies about the row count is ERR_PARQUET_READ, never padded, cut or a crash', async () => {
    const good = Buffer.from(
      parquetWriteBuffer({ columnData: [{ name: 'x', data: [1.5, 2.5, 3.5], type: 'DOUBLE' }] }),
    );
    // The footer (thrift compact): num_rows of the file and of its one row group are each the i64
    // field header 0x16 then the zigzag varint of 3 (0x06). Rewrite them, fixing the footer length.
    const len = good.readUInt32LE(good.length - 8);
    const start = good.length - 8 - len;
    const meta = good.subarray(start, good.length - 8);
    const at: number[] = [];
    for (let i = 0; i + 1 < meta.length; i++) if (meta[i] === 0x16 && meta[i + 1] === 0x06) at.push(i);
    const zigzag = (v: bigint): number[] => {
      let z = v >= 0n ? v << 1n : (-v << 1n) - 1n;
      const out: number[] = [];
      do {
        const b = Number(z & 0x7fn);
        z >>= 7n;
        out.push(z ? b | 0x80 : b);
      } while (z);
      return out;
    };
    const forge = (fileRows: bigint, groupRows: bigint): string => {
      const [f, g] = [at[0]!, at.at(-1)!];
      const m = Buffer.concat([
        meta.subarray(0, f + 1),
        Buffer.from(zigzag(fileRows)),
        meta.subarray(f + 2, g + 1),
        Buffer.from(zigzag(groupRows)),
        meta.subarray(g + 2),
      ]);
      const l = Buffer.alloc(4);
      l.writeUInt32LE(m.length);
      const p = join(dir, `forged-${fileRows}-${groupRows}.parquet`);
      writeFileSync(p, Buffer.concat([good.subarray(0, start), m, l, Buffer.from('PAR1')]));
      return p;
    };
    assert.deepEqual([...(await readParquet(forge(3n, 3n))).numbers('x')], [1.5, 2.5, 3.5]);
    // Before: 1 row read of 3 (cut), 5 rows with 2 made-up missing ones, a RangeError from the
    // allocation, and a row group of -1 rows read as all missing.
    const cases: [bigint, bigint, RegExp][] = [
      [1n, 3n, /declares 1 rows but its row groups hold 3/],
      [5n, 3n, /declares 5 rows but its row groups hold 3/],
      [-1n, 3n, /declares -1 rows/],
      [10n ** 12n, 3n, /declares 1000000000000 rows/],
      [3n, -1n, /a row group declares -1 rows/],
      [5n, 5n, /column "x" does not hold one value for each of the 5 rows/],
      [10n ** 12n, 10n ** 12n, /column "x" does not hold one value/],
    ];
    for (const [f, g, re] of cases)
      await assert.rejects(readParquet(forge(f, g)), { code: 'ERR_PARQUET_READ', message: re }, `${f}/${g}`);
  });

  it('a file that is not Parquet is ERR_PARQUET_READ; formats go by extension', async () => {
    const p = join(dir, 'fake.parquet');
    writeFileSync(p, 'a,b\n1,2\n');
    await assert.rejects(readParquet(p), { code: 'ERR_PARQUET_READ' });
    assert.equal(formatOf('a.CSV'), 'csv');
    assert.equal(formatOf('a.pq'), 'parquet');
    assert.throws(() => formatOf('a.xlsx'), { code: 'ERR_FORMAT_UNSUPPORTED' });
    assert.throws(() => formatOf('noext'), { code: 'ERR_FORMAT_UNSUPPORTED' });
  });

  it('readDataset/writeDataset convert between CSV and Parquet', async () => {
    const ds = Dataset.fromColumns({ a: [1, 2, 3], b: ['x', null, 'z'] });
    const sub = mkdtempSync(join(tmpdir(), 'bulwark-conv-'));
    await writeDataset(join(sub, 'd.parquet'), ds);
    const viaPq = await readDataset(join(sub, 'd.parquet'));
    await writeDataset(join(sub, 'd.tsv'), viaPq);
    const viaTsv = await readDataset(join(sub, 'd.tsv'));
    assert.deepEqual(viaTsv, ds);
    // Only the two outputs: no temporary files left behind.
    assert.deepEqual(readdirSync(sub).sort(), ['d.parquet', 'd.tsv']);
  });
});

describe('IDX', () => {
  it('decodes the format (plain and gzipped) and round-trips every element type', () => {
    // A hand-built file: uint8, 2 x 3, values 0..5.
    const bytes = Uint8Array.from([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5]);
    const t = parseIdx(bytes);
    assert.deepEqual(t.shape, [2, 3]);
    assert.deepEqual([...t.data], [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(parseIdx(gzipSync(bytes)), t);
    const cases = [
      { type: 'int8' as const, shape: [3], data: Int8Array.of(-1, 0, 127) },
      { type: 'int16' as const, shape: [2], data: Int16Array.of(-300, 300) },
      { type: 'int32' as const, shape: [1, 2], data: Int32Array.of(-70000, 70000) },
      { type: 'float32' as const, shape: [2], data: Float32Array.of(1.5, -2.25) },
      { type: 'float64' as const, shape: [2], data: Float64Array.of(Math.PI, -1e300) },
    ];
    for (const c of cases) assert.deepEqual(parseIdx(encodeIdx(c)), c);
  });

  it('refuses a bad magic, a bad type, a truncated file', async () => {
    assert.throws(() => parseIdx(Uint8Array.from([1, 0, 8, 1, 0, 0, 0, 1, 0])), {
      code: 'ERR_FORMAT_UNSUPPORTED',
    });
    assert.throws(() => parseIdx(Uint8Array.from([0, 0, 7, 1, 0, 0, 0, 1, 0])), {
      code: 'ERR_FORMAT_UNSUPPORTED',
    });
    assert.throws(() => parseIdx(Uint8Array.from([0, 0, 8, 1, 0, 0, 0, 2, 0])), {
      code: 'ERR_FORMAT_UNSUPPORTED',
      message: /expected 10 bytes/,
    });
    await assert.rejects(readIdx(join(dir, 'none.idx')), { code: 'ERR_FILE_NOT_FOUND' });
  });

  it('gzip that decompresses past the bound is refused, not inflated (a decompression bomb)', () => {
    const big = encodeIdx({ type: 'uint8', shape: [100_000], data: new Uint8Array(100_000) });
    const gz = gzipSync(big);
    assert.ok(gz.length < 1000);
    assert.throws(() => parseIdx(gz, 'bomb.idx.gz', 10_000), {
      code: 'ERR_FORMAT_UNSUPPORTED',
      message: 'bomb.idx.gz: not a valid IDX file: the gzip data decompresses to more than 10000 bytes',
    });
    assert.equal(parseIdx(gz, 'ok.idx.gz', 100_004 + 4).shape[0], 100_000);
  });
});
