/**
 * The streaming CSV writer of synthetic transactions: RFC 4180 output read back by csv-parse and by
 * the data layer, byte-for-byte determinism, atomicity (validation first, cancellation, no-clobber),
 * and that schema inference flags the personal columns.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'csv-parse/sync';
import { isBulwarkError } from '../../src/core/index.js';
import { inferSchema, isPersonal, openCsv } from '../../src/data/index.js';
import {
  generateTransactions,
  PERSONAL_COLUMNS,
  type SynthOptions,
  TRANSACTION_COLUMNS,
  type TransactionRecord,
  writeTransactionsCsv,
} from '../../src/data/synth/index.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'bulwark-synth-'));
}

function text(v: TransactionRecord[keyof TransactionRecord]): string {
  return v === null ? '' : String(v);
}

describe('writeTransactionsCsv', () => {
  it('writes RFC 4180 CSV that csv-parse reads back to exactly the generated records', async () => {
    const dir = tempDir();
    const path = join(dir, 'tx.csv');
    const opts: SynthOptions = { rows: 6000, fraudRate: 0.05, seed: 123 };
    const progress: number[] = [];
    const s = await writeTransactionsCsv(path, { ...opts, includeScenario: true }, (done, total) => {
      assert.equal(total, 6000);
      progress.push(done);
    });
    assert.equal(s.rows, 6000);
    assert.equal(s.columns, TRANSACTION_COLUMNS.length + 1);
    assert.deepEqual(
      progress,
      [...progress].sort((a, b) => a - b),
    );
    assert.equal(progress.at(-1), 6000);
    const raw = readFileSync(path);
    assert.equal(s.bytes, raw.length);
    const body = raw.toString('utf8');
    // CRLF record separators, none bare.
    assert.ok(body.endsWith('\r\n'));
    assert.equal(body.split('\r\n').length - 1, 6001);
    assert.doesNotMatch(body.replace(/\r\n/g, ''), /[\r\n]/);

    const table = parse(raw, { relax_column_count: false }) as string[][];
    assert.equal(table.length, 6001);
    assert.deepEqual(table[0], [...TRANSACTION_COLUMNS, 'scenario']);
    const records = [...generateTransactions(opts)];
    let fraud = 0;
    let quoted = 0;
    let withComma = 0;
    for (let i = 0; i < records.length; i++) {
      const row = table[i + 1] as string[];
      const rec = records[i] as TransactionRecord;
      assert.equal(row.length, TRANSACTION_COLUMNS.length + 1);
      for (let j = 0; j < TRANSACTION_COLUMNS.length; j++) {
        const col = TRANSACTION_COLUMNS[j] as (typeof TRANSACTION_COLUMNS)[number];
        const v = rec[col];
        if (typeof v === 'number') assert.equal(Number(row[j]), v, `row ${i + 1} ${col}: ${row[j]} vs ${v}`);
        else assert.equal(row[j], text(v), `row ${i + 1} ${col}`);
      }
      assert.equal(row.at(-1), rec.scenario);
      fraud += rec.is_fraud;
      if (rec.merchant_name.includes('"')) quoted++;
      if (rec.merchant_name.includes(',')) withComma++;
    }
    assert.equal(s.fraudRows, fraud);
    assert.equal(s.fraudRate, fraud / 6000);
    // The escaping was exercised: names with quotes and commas came back intact.
    assert.ok(quoted > 0 && withComma > 0, `${quoted} quoted, ${withComma} with commas`);
    assert.match(body, /,"Big ""[A-Za-z' ]+"" BBQ",/);
  });

  it('same seed and options give the same bytes; another seed different bytes', async () => {
    const dir = tempDir();
    const o = { rows: 3000, fraudRate: 0.02, seed: 77 };
    await writeTransactionsCsv(join(dir, 'a.csv'), o);
    await writeTransactionsCsv(join(dir, 'b.csv'), o);
    await writeTransactionsCsv(join(dir, 'c.csv'), { ...o, seed: 78 });
    const a = readFileSync(join(dir, 'a.csv'));
    assert.ok(a.equals(readFileSync(join(dir, 'b.csv'))));
    assert.ok(!a.equals(readFileSync(join(dir, 'c.csv'))));
    // Without the scenario column: 34 fields per line.
    const table = parse(a) as string[][];
    assert.ok(table.every((r) => r.length === TRANSACTION_COLUMNS.length));
  });

  it('the data layer reads the file back with the same rows and columns', async () => {
    const dir = tempDir();
    const path = join(dir, 'tx.csv');
    await writeTransactionsCsv(path, { rows: 2500, fraudRate: 0.05, seed: 5 });
    const reader = await openCsv(path);
    assert.deepEqual([...reader.columns], [...TRANSACTION_COLUMNS]);
    const records = [...generateTransactions({ rows: 2500, fraudRate: 0.05, seed: 5 })];
    let n = 0;
    for await (const row of reader) {
      const rec = records[n] as TransactionRecord;
      assert.equal(row.values.length, TRANSACTION_COLUMNS.length);
      TRANSACTION_COLUMNS.forEach((col, j) => {
        const v = rec[col];
        const got = row.values[j];
        // The reader gives null for empty fields (no device, no IP, online merchant location).
        if (v === null || v === '') assert.equal(got, null, `row ${n + 1} ${col}`);
        else if (typeof v === 'number') assert.equal(Number(got), v, `row ${n + 1} ${col}`);
        else assert.equal(got, v, `row ${n + 1} ${col}`);
      });
      n++;
    }
    assert.equal(n, 2500);
  });

  it('validates options before creating anything', async () => {
    const dir = tempDir();
    const path = join(dir, 'tx.csv');
    for (const bad of [
      { rows: 0, fraudRate: 0.1, seed: 1 },
      { rows: 10, fraudRate: 0.9, seed: 1 },
      { rows: 10, fraudRate: 0.1, seed: -3 },
    ]) {
      await assert.rejects(writeTransactionsCsv(path, bad), (e: unknown) => isBulwarkError(e));
    }
    await assert.rejects(writeTransactionsCsv('', { rows: 1, fraudRate: 0, seed: 1 }), (e: unknown) =>
      isBulwarkError(e, 'ERR_INVALID_ARGUMENT'),
    );
    await assert.rejects(writeTransactionsCsv(dir, { rows: 1, fraudRate: 0, seed: 1 }), (e: unknown) =>
      isBulwarkError(e, 'ERR_INVALID_ARGUMENT'),
    );
    assert.deepEqual(readdirSync(dir), []);
  });

  it('cancellation leaves no file and keeps an existing one; noClobber refuses to overwrite', async () => {
    const dir = tempDir();
    const path = join(dir, 'tx.csv');
    const ac = new AbortController();
    await assert.rejects(
      writeTransactionsCsv(path, { rows: 200_000, fraudRate: 0.02, seed: 1, signal: ac.signal }, () =>
        ac.abort(),
      ),
      (e: unknown) => isBulwarkError(e, 'ERR_ABORTED'),
    );
    assert.deepEqual(readdirSync(dir), [], 'no output and no temporary file');

    writeFileSync(path, 'previous content\n');
    const ac2 = new AbortController();
    await assert.rejects(
      writeTransactionsCsv(path, { rows: 200_000, fraudRate: 0.02, seed: 1, signal: ac2.signal }, () =>
        ac2.abort(),
      ),
      (e: unknown) => isBulwarkError(e, 'ERR_ABORTED'),
    );
    assert.equal(readFileSync(path, 'utf8'), 'previous content\n');
    assert.deepEqual(readdirSync(dir), ['tx.csv']);

    const already = new AbortController();
    already.abort();
    await assert.rejects(
      writeTransactionsCsv(join(dir, 'other.csv'), {
        rows: 10,
        fraudRate: 0,
        seed: 1,
        signal: already.signal,
      }),
      (e: unknown) => isBulwarkError(e, 'ERR_ABORTED'),
    );
    await assert.rejects(
      writeTransactionsCsv(path, { rows: 10, fraudRate: 0, seed: 1, noClobber: true }),
      (e: unknown) => isBulwarkError(e, 'ERR_FILE_EXISTS'),
    );
    assert.equal(readFileSync(path, 'utf8'), 'previous content\n');
    assert.deepEqual(readdirSync(dir), ['tx.csv']);
  });

  it('schema inference marks the personal columns as personal or sensitive', async () => {
    const dir = tempDir();
    const path = join(dir, 'tx.csv');
    await writeTransactionsCsv(path, { rows: 3000, fraudRate: 0.05, seed: 2 });
    const schema = await inferSchema(path, { label: 'is_fraud' });
    const byName = new Map(schema.fields.map((f) => [f.name, f]));
    // City and state alone are coarse (quasi-identifiers); the rest identify a person.
    for (const c of PERSONAL_COLUMNS.filter((c) => c !== 'city' && c !== 'state')) {
      const f = byName.get(c);
      assert.ok(f, c);
      assert.ok(isPersonal(f), `${c} is ${f.sensitivity}`);
    }
    assert.equal(byName.get('card_number')?.pii, 'card_number');
    assert.equal(byName.get('national_id')?.pii, 'national_id');
    assert.equal(byName.get('email')?.pii, 'email');
    assert.equal(byName.get('card_number')?.sensitivity, 'sensitive');
    for (const c of ['amount', 'is_fraud', 'category', 'tx_count_1h']) {
      assert.equal(isPersonal(byName.get(c) as never), false, c);
    }
  });
});
