import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SeededRng } from '../../src/core/index.js';
import {
  checkAgainstSchema,
  Dataset,
  detectPii,
  inferSchema,
  inferSchemaFromDataset,
  isBirthDate,
  isCardNumber,
  isEmail,
  isIban,
  isPersonal,
  isPersonName,
  isPhone,
  isSsn,
  isStreetAddress,
  loadSchema,
  luhnValid,
  niceCeil,
  niceFloor,
  normalizeColumnName,
  parseSchema,
  type Schema,
  saveSchema,
  schemaToYaml,
  validateAgainstSchema,
  validateSchema,
  writeCsv,
} from '../../src/data/index.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-schema-'));

const GOOD = `
version: 1
name: tx
label: fraud
fields:
  - { name: amount, type: number, nullable: false, bounds: { min: 0, max: 10000 }, sensitivity: internal }
  - { name: n, type: integer, bounds: { min: 0, max: 5 } }
  - { name: kind, type: category, categories: [a, b, 3], sensitivity: public }
  - { name: email, type: string, sensitivity: personal, pii: email, detected: { by: values, matchRate: 1 } }
  - { name: when, type: timestamp, bounds: { min: 2024-01-01, max: "2025-01-01T00:00:00Z" } }
  - { name: fraud, type: integer, nullable: false, description: label }
`;

function code(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
}

describe('schema YAML', () => {
  it('parses, applies defaults, converts timestamp bounds and category numbers', () => {
    const s = parseSchema(GOOD, 'tx.yaml');
    assert.equal(s.fields.length, 6);
    assert.equal(s.fields[1]!.nullable, true);
    assert.equal(s.fields[1]!.sensitivity, 'internal');
    assert.deepEqual(s.fields[2]!.categories, ['a', 'b', '3']);
    assert.deepEqual(s.fields[4]!.bounds, { min: Date.UTC(2024, 0, 1), max: Date.UTC(2025, 0, 1) });
    assert.equal(s.label, 'fraud');
  });

  it('round-trips through YAML text and an atomically written file', async () => {
    const s = parseSchema(GOOD);
    assert.deepEqual(parseSchema(schemaToYaml(s)), s);
    const p = join(dir, 's.yaml');
    await saveSchema(p, s);
    assert.deepEqual(await loadSchema(p), s);
    assert.match(readFileSync(p, 'utf8'), /min: 2024-01-01\n/);
  });

  it('rejects malformed and inconsistent schemas with ERR_SCHEMA_INVALID naming the key path', () => {
    const bad: [string, RegExp][] = [
      ['version: 2\nfields: [{name: a, type: number}]', /version/],
      ['version: 1\nfields: [{name: a, type: float}]', /fields\[0\]\.type/],
      [
        'version: 1\nfields: [{name: a, type: number}, {name: a, type: string}]',
        /fields\[1\]\.name: field "a" is declared twice/,
      ],
      [
        'version: 1\nfields: [{name: a, type: number, bounds: {min: 5, max: 1}}]',
        /fields\[0\]\.bounds: min 5 is greater than max 1/,
      ],
      ['version: 1\nfields: [{name: a, type: string, bounds: {min: 0, max: 1}}]', /bounds apply to number/],
      ['version: 1\nfields: [{name: a, type: string, categories: [x]}]', /categories apply to category/],
      ['version: 1\nfields: [{name: a, type: category, categories: [x, x]}]', /unique/],
      [
        'version: 1\nfields: [{name: a, type: string, pii: email, sensitivity: public}]',
        /must be personal or sensitive/,
      ],
      ['version: 1\nfields: [{name: a, type: string, extra: 1}]', /fields\[0\]/],
      ['version: 1\nlabel: y\nfields: [{name: a, type: string}]', /label/],
      [
        'version: 1\nfields: [{name: a, type: timestamp, bounds: {min: yesterday, max: 2024-01-01}}]',
        /bounds\.min: not a date/,
      ],
      ['version: 1\nfields: [ {name: a', /s\.yaml/],
    ];
    for (const [text, re] of bad) {
      assert.throws(
        () => parseSchema(text, 's.yaml'),
        (e: Error & { code: string }) => {
          assert.equal(e.code, 'ERR_SCHEMA_INVALID', text);
          assert.match(e.message, re, text);
          return true;
        },
      );
    }
    assert.equal(
      code(() => validateSchema({ version: 1, fields: [] })),
      'ERR_SCHEMA_INVALID',
    );
  });
});

describe('validateAgainstSchema', () => {
  const schema: Schema = parseSchema(`
version: 1
fields:
  - { name: id, type: integer, nullable: false }
  - { name: amount, type: number, bounds: { min: 0, max: 100 } }
  - { name: kind, type: category, categories: [a, b] }
  - { name: email, type: string, nullable: false, sensitivity: personal, pii: email }
`);
  const good = () =>
    Dataset.fromColumns({
      id: [1, 2, 3],
      amount: [5, null, 100],
      kind: ['a', 'b', null],
      email: ['x@y.org', 'z@y.org', 'w@y.org'],
    });

  it('accepts matching data and returns it typed', () => {
    const ds = validateAgainstSchema(good(), schema);
    assert.equal(ds.rowCount, 3);
    // String numbers (as a CSV read without inference would give) are converted.
    const asText = Dataset.fromColumns({
      id: ['1', '2', '3'],
      amount: ['5', null, '100'],
      kind: ['a', 'b', null],
      email: ['x@y.org', 'z@y.org', 'w@y.org'],
    });
    assert.deepEqual([...validateAgainstSchema(asText, schema).numbers('id')], [1, 2, 3]);
  });

  it('names the row and field of each problem, never quoting personal values', () => {
    const cases: [Dataset, RegExp][] = [
      [
        good().withColumn({ name: 'amount', type: 'number', values: Float64Array.of(5, 101, 1) }),
        /^row 2, field "amount": value outside the bounds \[0, 100\] \(101\)$/,
      ],
      [
        good().withColumn({ name: 'id', type: 'number', values: Float64Array.of(1, 2.5, 3) }),
        /^row 2, field "id": not an integer/,
      ],
      [
        good().withColumn({ name: 'kind', type: 'string', values: ['a', 'c', 'b'] }),
        /^row 2, field "kind": value is not one of the declared categories \("c"\)$/,
      ],
      [
        good().withColumn({ name: 'email', type: 'string', values: ['x@y.org', null, 'secret@y.org'] }),
        /^row 2, field "email": missing value in a non-nullable field$/,
      ],
      [
        good().withColumn({ name: 'id', type: 'string', values: ['1', 'two', '3'] }),
        /^row 2, field "id": not an integer \("two"\)$/,
      ],
      [good().drop(['kind']), /^field "kind": column is missing from the data$/],
      [
        good().withColumn({ name: 'ssn', type: 'string', values: ['1', '2', '3'] }),
        /^field "ssn": column is not declared in the schema$/,
      ],
    ];
    for (const [ds, re] of cases) {
      assert.throws(
        () => validateAgainstSchema(ds, schema),
        (e: Error & { code: string }) => {
          assert.equal(e.code, 'ERR_SCHEMA_MISMATCH');
          assert.match(e.message, re);
          return true;
        },
      );
    }
    const personal = good().withColumn({ name: 'email', type: 'number', values: Float64Array.of(1, 2, 3) });
    // A number column for a string field converts; a bad personal value is reported without its text.
    assert.equal(validateAgainstSchema(personal, schema).rowCount, 3);
    const badPersonal = parseSchema(
      'version: 1\nfields: [{name: card, type: integer, sensitivity: sensitive, pii: card_number}]',
    );
    assert.throws(
      () => validateAgainstSchema(Dataset.fromColumns({ card: ['4111 1111 1111 1111'] }), badPersonal),
      (e: Error) => !e.message.includes('4111') && /row 1, field "card": not an integer$/.test(e.message),
    );
    assert.equal(
      checkAgainstSchema(
        personal.withColumn({ name: 'extra', type: 'number', values: new Float64Array(3) }),
        schema,
        { allowExtraColumns: true },
      ).length,
      0,
    );
  });

  it('reports every problem of a column with values that do not parse: each of them, and the rest', () => {
    const ds = good().withColumn({ name: 'amount', type: 'string', values: ['999', 'abc', 'x'] });
    assert.deepEqual(
      checkAgainstSchema(ds, schema).map((i) => [i.field, i.row, i.problem]),
      [
        ['amount', 2, 'not a number ("abc")'],
        ['amount', 3, 'not a number ("x")'],
        ['amount', 1, 'value outside the bounds [0, 100] (999)'],
      ],
    );
  });
});

describe('PII value tests', () => {
  it('card numbers: Luhn with 13-19 digits', () => {
    assert.ok(luhnValid('79927398713'));
    assert.ok(!luhnValid('79927398710'));
    for (const c of [
      '4111111111111111',
      '4111 1111 1111 1111',
      '5500-0000-0000-0004',
      '340000000000009',
      '6011000000000004',
      '4222222222222',
    ])
      assert.ok(isCardNumber(c), c);
    for (const c of [
      '4111111111111112',
      '1234',
      '0000000000000000',
      '41111111111111111111',
      'abcd efgh ijkl mnop',
    ])
      assert.ok(!isCardNumber(c), c);
  });

  it('SSN format with the SSA assignment rules', () => {
    assert.ok(isSsn('123-45-6789'));
    for (const s of [
      '000-12-3456',
      '666-12-3456',
      '912-12-3456',
      '123-00-4567',
      '123-45-0000',
      '123456789',
      '123-456-789',
    ])
      assert.ok(!isSsn(s), s);
  });

  it('e-mail, phone, IBAN, street address, person name, birth date', () => {
    assert.ok(isEmail('jane.doe+x@mail.example.co.uk'));
    assert.ok(!isEmail('jane@localhost') && !isEmail('not an email') && !isEmail('@x.org'));
    for (const p of [
      '+44 20 7946 0958',
      '+15551234567',
      '(555) 123-4567',
      '555-123-4567',
      '555.123.4567',
      '020 7946 0958',
    ])
      assert.ok(isPhone(p), p);
    for (const p of ['5551234567', '123-45-6789', '2024-01-02', '12', '+1 2']) assert.ok(!isPhone(p), p);
    assert.ok(isIban('GB82 WEST 1234 5698 7654 32'));
    assert.ok(isIban('DE89370400440532013000'));
    assert.ok(!isIban('GB82 WEST 1234 5698 7654 33'));
    for (const a of [
      '221B Baker Street',
      '1600 Pennsylvania Ave NW',
      '12 Elm St. Apt 4',
      '12 rue de la Paix',
      'Hauptstraße 5',
      '6682 Hickory Ct Apt 15B',
    ])
      assert.ok(isStreetAddress(a), a);
    for (const a of ['Baker Street', '12 apples', 'CASH_OUT']) assert.ok(!isStreetAddress(a), a);
    for (const n of ['Jane Doe', "Mary-Jane O'Neil", 'J. Smith', 'JOSÉ ÁLVAREZ'])
      assert.ok(isPersonName(n), n);
    for (const n of ['C1231006815', 'CASH_OUT', 'jane doe', 'a b c d e f']) assert.ok(!isPersonName(n), n);
    assert.ok(isBirthDate('1968-09-06') && isBirthDate('06/09/1968') && isBirthDate('1968/09/06'));
    assert.ok(!isBirthDate('1850-01-01') && !isBirthDate('2999-01-01') && !isBirthDate('31/31/1999'));
  });

  it('normalises column names for the name patterns', () => {
    assert.equal(normalizeColumnName('nameOrig'), 'name_orig');
    assert.equal(normalizeColumnName('CardHolderName'), 'card_holder_name');
    assert.equal(normalizeColumnName('default.payment.next.month'), 'default_payment_next_month');
    assert.equal(normalizeColumnName('SSN'), 'ssn');
    assert.equal(normalizeColumnName('IPAddress'), 'ip_address');
  });
});

/** Generated data: personal columns under uninformative names, plus look-alikes that are not personal. */
function generated(rows: number, seed: number): Dataset {
  const rng = new SeededRng(seed);
  const first = ['James', 'Mary', 'Wei', 'Fatima', 'Olga', 'Carlos', 'Aiko', 'Kwame'];
  const last = ['Smith', 'Nguyen', 'Okafor', 'García', 'Müller', "O'Brien", 'Kowalski', 'Tanaka'];
  const streets = ['Oak', 'Maple', 'Cedar', 'Elm', 'Hickory', 'Jefferson'];
  const sfx = ['St', 'Ave', 'Road', 'Blvd', 'Lane', 'Ct'];
  const card = (): string => {
    // A 16-digit Visa-like number with a correct Luhn check digit.
    let body = '4';
    for (let i = 0; i < 14; i++) body += String(rng.int(10));
    for (let d = 0; d < 10; d++) if (luhnValid(body + d)) return body + d;
    throw new Error('unreachable');
  };
  const cols: Record<string, string[]> = {
    holder: [],
    pan: [],
    col_a: [],
    col_b: [],
    contact: [],
    col_c: [],
    home: [],
    dob: [],
    col_d: [],
    random16: [],
    merchant_name: [],
    note: [],
  };
  for (let i = 0; i < rows; i++) {
    cols['holder']!.push(`${first[rng.int(8)]} ${last[rng.int(8)]}`);
    cols['pan']!.push(card());
    cols['col_a']!.push(card().replace(/(\d{4})(?=\d)/g, '$1 '));
    cols['col_b']!.push(`${100 + rng.int(500)}-${String(10 + rng.int(89))}-${String(1000 + rng.int(8999))}`);
    cols['contact']!.push(`user${i}@example.com`);
    cols['col_c']!.push(`(${200 + rng.int(700)}) ${200 + rng.int(700)}-${String(1000 + rng.int(8999))}`);
    cols['home']!.push(`${1 + rng.int(9999)} ${streets[rng.int(6)]} ${sfx[rng.int(6)]}`);
    cols['dob']!.push(
      `${1940 + rng.int(60)}-${String(1 + rng.int(12)).padStart(2, '0')}-${String(1 + rng.int(28)).padStart(2, '0')}`,
    );
    cols['col_d']!.push(`10.${rng.int(256)}.${rng.int(256)}.${rng.int(256)}`);
    // 16 random digits: a Luhn check passes for one in ten, far below the match threshold.
    cols['random16']!.push(Array.from({ length: 16 }, () => String(rng.int(10))).join(''));
    cols['merchant_name']!.push(`${streets[rng.int(6)]} Grill`);
    cols['note']!.push(rng.bernoulli(0.5) ? 'ok' : 'check');
  }
  const ds = Dataset.fromColumns(cols);
  return ds
    .withColumn({
      name: 'amount',
      type: 'number',
      values: Float64Array.from({ length: rows }, () => Math.round(rng.uniform(1, 999) * 100) / 100),
    })
    .withColumn({
      name: 'age',
      type: 'number',
      values: Float64Array.from({ length: rows }, () => 18 + rng.int(70)),
    })
    .withColumn({
      name: 'category',
      type: 'string',
      values: Array.from({ length: rows }, () => ['food', 'fuel', 'travel'][rng.int(3)]!),
    });
}

describe('PII detection and schema inference on generated data', () => {
  const ds = generated(600, 42);

  it('finds each personal column by its values, whatever its name', () => {
    const found = new Map(detectPii(ds, { sample: 300, seed: 1 }).map((f) => [f.field, f]));
    const expect: [string, string, string][] = [
      ['holder', 'name', 'name+values'],
      ['pan', 'card_number', 'name+values'],
      ['col_a', 'card_number', 'values'],
      ['col_b', 'national_id', 'values'],
      ['contact', 'email', 'values'],
      ['col_c', 'phone', 'values'],
      ['home', 'address', 'values'],
      ['dob', 'date_of_birth', 'name+values'],
      ['col_d', 'ip', 'values'],
      ['age', 'quasi_identifier', 'name'],
    ];
    for (const [field, kind, by] of expect) {
      const f = found.get(field);
      assert.ok(f, `${field} not detected`);
      assert.equal(f.kind, kind, field);
      assert.equal(f.by, by, field);
    }
    for (const field of ['random16', 'merchant_name', 'note', 'amount', 'category'])
      assert.ok(!found.has(field), field);
    assert.equal(found.get('col_a')!.sensitivity, 'sensitive');
    assert.equal(found.get('contact')!.matchRate, 1);
  });

  it('a column below the match-rate threshold is not flagged; the threshold is an option', () => {
    const mixed = Dataset.fromColumns({
      v: Array.from({ length: 100 }, (_, i) => (i < 70 ? `u${i}@example.com` : 'n/a')),
    });
    assert.equal(detectPii(mixed).length, 0);
    assert.equal(detectPii(mixed, { minMatchRate: 0.6 })[0]!.kind, 'email');
    assert.throws(() => detectPii(mixed, { minMatchRate: 0 }), { code: 'ERR_INVALID_ARGUMENT' });
  });

  it('flags online identifiers (device ids) by name as personal, not look-alike names', () => {
    const ds2 = Dataset.fromColumns({
      device_id: Array.from({ length: 50 }, (_, i) => `dev-${1000 + i}`),
      deviceFingerprint: Array.from({ length: 50 }, (_, i) => `fp${i}`),
      device_type: Array.from({ length: 50 }, (_, i) => (i % 2 ? 'ios' : 'android')),
    });
    const found = new Map(detectPii(ds2).map((f) => [f.field, f]));
    assert.equal(found.get('device_id')?.kind, 'device_id');
    assert.equal(found.get('device_id')?.sensitivity, 'personal');
    assert.equal(found.get('deviceFingerprint')?.kind, 'device_id');
    assert.equal(found.has('device_type'), false);
  });

  it('infers types, rounded public bounds, categories; keeps every field; hides identifiers’ values', async () => {
    const s = inferSchemaFromDataset(ds, { label: 'category' });
    assert.equal(s.fields.length, ds.columns.length);
    const by = new Map(s.fields.map((f) => [f.name, f]));
    assert.equal(by.get('amount')!.type, 'number');
    assert.equal(by.get('age')!.type, 'integer');
    assert.deepEqual(by.get('age')!.bounds, { min: 10, max: 90 });
    assert.equal(by.get('category')!.type, 'category');
    assert.deepEqual(by.get('category')!.categories, ['food', 'fuel', 'travel']);
    assert.equal(by.get('note')!.sensitivity, 'internal');
    for (const f of ['holder', 'pan', 'col_a', 'col_b', 'contact', 'col_c', 'home', 'dob', 'col_d']) {
      const field = by.get(f)!;
      assert.ok(isPersonal(field), f);
      assert.equal(field.categories, undefined, f);
      assert.equal(field.bounds, undefined, f);
    }
    assert.equal(by.get('pan')!.sensitivity, 'sensitive');
    assert.equal(by.get('col_b')!.pii, 'national_id');
    assert.equal(s.label, 'category');
    // From a file, the same result.
    const p = join(dir, 'gen.csv');
    await writeCsv(p, ds);
    const fromFile = await inferSchema(p, { label: 'category' });
    assert.deepEqual(
      fromFile.fields.map((f) => [f.name, f.sensitivity, f.pii]),
      s.fields.map((f) => [f.name, f.sensitivity, f.pii]),
    );
    // The inferred schema validates the data it came from, and survives YAML.
    validateAgainstSchema(await (await import('../../src/data/index.js')).readCsvDataset(p), fromFile);
    assert.deepEqual(parseSchema(schemaToYaml(fromFile)), fromFile);
  });

  it('exact bounds on request; nice rounding of bounds', () => {
    const s = inferSchemaFromDataset(Dataset.fromColumns({ x: [17, 87.5] }), { exactBounds: true });
    assert.deepEqual(s.fields[0]!.bounds, { min: 17, max: 87.5 });
    assert.deepEqual(
      [niceFloor(17), niceCeil(87.5), niceFloor(-1234), niceCeil(2174), niceFloor(0.37), niceCeil(0.3)],
      [10, 90, -2000, 3000, 0.3, 0.3],
    );
  });

  it('data passes the schema inferred from it, through YAML, at the ends of the date and number ranges', async () => {
    // "0001-01-01" and "9999-12-31" are common "no date" values. Their rounded bounds were 1901
    // (Date.UTC reads years 0-99 as 1900-1999: the data failed its own schema) and 10000-01-01 (a
    // schema its own loader refused); the largest doubles rounded to Infinity (an invalid schema).
    const p = join(dir, 'extremes.csv');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(
      p,
      'valid_from,valid_to,big\n0001-01-01,9999-12-31,1.7976931348623157e308\n0050-06-01,2024-05-01,-1.7976931348623157e308\n',
    );
    const { readCsvDataset } = await import('../../src/data/index.js');
    const ds = await readCsvDataset(p);
    assert.deepEqual(
      ds.columns.map((c) => c.type),
      ['timestamp', 'timestamp', 'number'],
    );
    const schema = inferSchemaFromDataset(ds);
    assert.deepEqual(schema.fields[0]!.bounds, {
      min: Date.parse('0001-01-01'),
      max: Date.parse('0051-01-01'),
    });
    assert.equal(schema.fields[1]!.bounds!.max, Date.parse('9999-12-31'));
    assert.deepEqual(schema.fields[2]!.bounds, { min: -Number.MAX_VALUE, max: Number.MAX_VALUE });
    const out = join(dir, 'extremes.schema.yaml');
    await saveSchema(out, schema);
    const loaded = await loadSchema(out);
    assert.deepEqual(checkAgainstSchema(ds, loaded), []);
  });
});
