import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseSchema, readDataset, writeDataset } from '../../src/data/index.js';
import { type CliRun, inParallel, runBulwark, runBulwarkAsync, runBulwarkInProcess } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-datacli-'));
const good = join(dir, 'people.csv');
writeFileSync(
  good,
  [
    'id,full_name,email,card,amount,kind',
    '1,Jane Doe,jane@example.com,4111111111111111,12.5,a',
    '2,John Roe,john@example.org,5500000000000004,99,b',
    '3,Ann Poe,ann@example.net,340000000000009,7.25,a',
    '4,Bob Loe,bob@example.com,6011000000000004,15,b',
    '5,Eve Moe,eve@example.com,4222222222222,1,a',
  ].join('\n') + '\n',
);

describe('bulwark data schema / validate / datasets', () => {
  it('schema: a table of fields with type and sensitivity; --out writes YAML atomically', async () => {
    const out = join(dir, 'people.schema.yaml');
    const r = runBulwark(['data', 'schema', good, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^FIELD\s+TYPE\s+NULLABLE\s+SENSITIVITY\s+PII/m);
    assert.match(r.stdout, /^card\s+string\s+no\s+sensitive\s+card_number\s+name\+values 100%/m);
    assert.match(r.stdout, /^email\s+string\s+no\s+personal\s+email/m);
    assert.match(r.stdout, /^full_name\s+string\s+no\s+personal\s+name/m);
    assert.match(r.stdout, /5 rows, 6 fields, 3 personal \(1 sensitive\); schema written to/);
    const schema = parseSchema(readFileSync(out, 'utf8'));
    assert.equal(schema.fields.length, 6);
    // An existing schema is kept unless --force; the data file itself is never the output.
    assert.equal((await runBulwarkInProcess(['data', 'schema', good, '--out', out])).code, 3);
    assert.equal(runBulwark(['data', 'schema', good, '--out', out, '--force']).code, 0);
    const before = readFileSync(good, 'utf8');
    const self = await runBulwarkInProcess(['data', 'schema', good, '--out', good, '--force']);
    assert.equal(self.code, 2);
    assert.match(self.stderr, /ERR_USAGE: --out \S+ is also an input of this command/);
    assert.equal(readFileSync(good, 'utf8'), before);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });

  it('schema --json: the schema as JSON on stdout', () => {
    const r = runBulwark(['--json', 'data', 'schema', good, '--sample', '3']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      rows: number;
      schema: { fields: { name: string; sensitivity: string }[] };
    };
    assert.equal(j.rows, 5);
    assert.equal(j.schema.fields.find((f) => f.name === 'card')?.sensitivity, 'sensitive');
  });

  it('validate: exit 0 on matching data, 3 naming row and field on a mismatch', async () => {
    const schemaPath = join(dir, 'people.schema.yaml');
    if (!existsSync(schemaPath)) runBulwark(['data', 'schema', good, '--out', schemaPath]);
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, `${readFileSync(good, 'utf8')}6,Zed Doe,zed@example.com,4111111111111111,-5,c\n`);
    // Three validations that only read: two processes at a time.
    const [ok, r, j] = (await inParallel([
      () => runBulwarkAsync(['data', 'validate', good, '--schema', schemaPath]),
      () => runBulwarkAsync(['data', 'validate', bad, '--schema', schemaPath]),
      () => runBulwarkAsync(['--json', 'data', 'validate', bad, '--schema', schemaPath]),
    ])) as [CliRun, CliRun, CliRun];
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /5 rows match/);
    assert.equal(r.code, 3);
    // Every problem is listed, then the error line names the first.
    assert.match(r.stderr, /^ {2}row 6, field "amount": value outside the bounds \[1, 100\] \(-5\)$/m);
    assert.match(r.stderr, /^ {2}row 6, field "kind": value is not one of the declared categories \("c"\)$/m);
    assert.match(
      r.stderr,
      /\nbulwark: ERR_SCHEMA_MISMATCH: .*bad\.csv: row 6, field "id": value outside the bounds \[1, 5\] \(6\) \(and 2 more\)\n$/,
    );
    assert.doesNotMatch(r.stderr, /4111/);
    assert.equal(j.code, 3);
    assert.equal((JSON.parse(j.stderr) as { error: { code: string } }).error.code, 'ERR_SCHEMA_MISMATCH');
  });

  it('exit 3 for a missing file, a malformed CSV, an unknown format; 2 for a bad option', async () => {
    const malformed = join(dir, 'malformed.csv');
    writeFileSync(malformed, 'a,b\n1,2\n3,"4\n');
    const badSchema = join(dir, 'bad.yaml');
    writeFileSync(badSchema, 'version: 1\nfields: [{name: a, type: float}]\n');
    // Every run is refused without writing, before any work: one at a time, in this process.
    const [missing, m, fmt, opt, noSchema, bs] = (await inParallel(
      [
        () => runBulwarkInProcess(['data', 'schema', join(dir, 'nope.csv')]),
        () => runBulwarkInProcess(['data', 'schema', malformed, '--out', join(dir, 'm.yaml')]),
        () => runBulwarkInProcess(['data', 'schema', join(dir, 'x.xlsx')]),
        () => runBulwarkInProcess(['data', 'schema', good, '--sample', 'many']),
        () => runBulwarkInProcess(['data', 'validate', good]),
        () => runBulwarkInProcess(['data', 'validate', good, '--schema', badSchema]),
      ],
      1,
    )) as [CliRun, CliRun, CliRun, CliRun, CliRun, CliRun];
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /^bulwark: ERR_FILE_NOT_FOUND: .*nope\.csv/);
    assert.equal(m.code, 3);
    assert.match(m.stderr, /^bulwark: ERR_CSV_PARSE: malformed\.csv:3: /);
    assert.equal(existsSync(join(dir, 'm.yaml')), false);
    assert.equal(fmt.code, 3);
    assert.match(fmt.stderr, /ERR_FORMAT_UNSUPPORTED/);
    assert.equal(opt.code, 2);
    assert.match(opt.stderr, /ERR_USAGE/);
    assert.equal(noSchema.code, 2);
    assert.equal(bs.code, 3);
    assert.match(bs.stderr, /ERR_SCHEMA_INVALID: .*fields\[0\]\.type/);
  });

  it('terminal escapes in column names and values are shown, not obeyed, on stdout and stderr', () => {
    // A header that retitles the terminal and moves the cursor back over the SENSITIVITY column
    // of the card field's row to print "public" there; a bidi override in a category value.
    const esc = '\u001b';
    const p = join(dir, 'escapes.csv');
    writeFileSync(
      p,
      `card,"${esc}]0;pwned\u0007${esc}[1A${esc}[30Gpublic   ",kind\n` +
        Array.from({ length: 6 }, (_, i) => `4111111111111111,${i},\u202eab${i % 2}\n`).join(''),
    );
    const r = runBulwark(['data', 'schema', p]);
    assert.equal(r.code, 0, r.stderr);
    for (const c of ['\u001b', '\u0007', '\u202e']) assert.ok(!r.stdout.includes(c), JSON.stringify(c));
    assert.ok(r.stdout.includes('\\u001b]0;pwned\\u0007\\u001b[1A'), r.stdout);
    assert.ok(r.stdout.includes('\\u202eab0'), r.stdout);
    // The same in an error message (a duplicate column name is quoted in it).
    const dup = join(dir, 'escapes-dup.csv');
    writeFileSync(dup, `${esc}[2J,${esc}[2J\n1,2\n`);
    const e = runBulwark(['data', 'schema', dup]);
    assert.equal(e.code, 3);
    assert.ok(!e.stderr.includes('\u001b'));
    assert.match(e.stderr, /duplicate column name "\\u001b\[2J"/);
  });

  it('schema and validate read Parquet by extension', async () => {
    const pq = join(dir, 'people.parquet');
    await writeDataset(pq, await readDataset(good));
    const out = join(dir, 'pq.schema.yaml');
    const r = runBulwark(['data', 'schema', pq, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^card\s+string\s+no\s+sensitive\s+card_number/m);
    assert.equal(runBulwark(['data', 'validate', pq, '--schema', out]).code, 0);
  });

  it('CSV options: delimiter, no header, missing tokens', () => {
    const p = join(dir, 'semi.txt.csv');
    writeFileSync(p, '1;?\n2;x\n');
    const r = runBulwark([
      '--json',
      'data',
      'schema',
      p,
      '--delimiter',
      ';',
      '--no-header',
      '--missing',
      '?',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { schema: { fields: { name: string; nullable: boolean }[] } };
    assert.deepEqual(
      j.schema.fields.map((f) => [f.name, f.nullable]),
      [
        ['c1', false],
        ['c2', true],
      ],
    );
  });

  it('datasets: lists the registry with presence; --json', async () => {
    const [r, human] = (await inParallel([
      () => runBulwarkAsync(['--json', 'data', 'datasets', '--dir', dir]),
      () => runBulwarkAsync(['data', 'datasets', '--dir', dir]),
    ])) as [CliRun, CliRun];
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout) as { name: string; present: boolean }[];
    assert.deepEqual(
      list.map((d) => d.name).filter((n) => ['adult', 'german-credit', 'mnist', 'fashion-mnist'].includes(n)),
      ['adult', 'fashion-mnist', 'german-credit', 'mnist'],
    );
    assert.equal(list.find((d) => d.name === 'adult')?.present, false);
    assert.match(human.stdout, /^NAME\s+KIND\s+PRESENT/m);
    assert.match(human.stdout, /missing files:/);
  });
});
