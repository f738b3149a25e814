import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import { validateSchema } from '../../src/data/index.js';
import { InputValidator, validateFeatures } from '../../src/robust/index.js';

const schema = validateSchema({
  version: 1,
  label: 'is_fraud',
  fields: [
    { name: 'amount', type: 'number', nullable: false, bounds: { min: 0, max: 10000 } },
    { name: 'items', type: 'integer', nullable: false, bounds: { min: 1, max: 50 } },
    { name: 'channel', type: 'category', nullable: false, categories: ['web', 'pos', 'atm'] },
    { name: 'when', type: 'timestamp', nullable: true, bounds: { min: '2020-01-01', max: '2030-01-01' } },
    { name: 'note', type: 'string', nullable: true },
    { name: 'email', type: 'string', nullable: true, sensitivity: 'personal', pii: 'email' },
    { name: 'card_age_days', type: 'number', nullable: true, sensitivity: 'personal' },
    { name: 'is_fraud', type: 'integer', nullable: false },
  ],
});

const good = {
  amount: 12.5,
  items: 2,
  channel: 'web',
  when: '2024-03-01T10:00:00Z',
  note: 'x',
  email: null,
  card_age_days: 400,
};

describe('InputValidator', () => {
  const v = new InputValidator(schema, { limits: { maxRows: 3, maxStringLength: 20 } });

  it('accepts a valid row and types it for the pipeline (label not required)', () => {
    const rows = v.assert(good);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.['amount'], 12.5);
    assert.equal(rows[0]?.['when'], Date.parse('2024-03-01T10:00:00Z'));
    assert.equal(rows[0]?.['channel'], 'web');
    assert.ok(!('is_fraud' in (rows[0] ?? {})));
    assert.equal(v.assert([good, { ...good, when: null }]).length, 2);
  });

  const cases: [string, unknown, string, string | null][] = [
    ['amount above bounds', { ...good, amount: 1e30 }, 'bounds', 'amount'],
    ['negative amount', { ...good, amount: -1 }, 'bounds', 'amount'],
    ['NaN', { ...good, amount: Number.NaN }, 'non_finite', 'amount'],
    ['Infinity', { ...good, amount: Number.POSITIVE_INFINITY }, 'non_finite', 'amount'],
    ['amount as a string', { ...good, amount: '12' }, 'type', 'amount'],
    ['amount as an object', { ...good, amount: { $gt: 1 } }, 'type', 'amount'],
    ['non-integer items', { ...good, items: 2.5 }, 'integer', 'items'],
    ['unknown category', { ...good, channel: 'phone' }, 'category', 'channel'],
    ['missing required', { amount: 1, channel: 'web' }, 'missing', 'items'],
    ['null in required', { ...good, items: null }, 'missing', 'items'],
    ['unknown field', { ...good, admin: true }, 'unknown_field', 'admin'],
    ['bad timestamp', { ...good, when: 'yesterday' }, 'type', 'when'],
    ['timestamp out of range', { ...good, when: '1999-01-01' }, 'bounds', 'when'],
    ['not an object', 42, 'not_object', null],
    ['array row', [[1, 2]], 'not_object', null],
    ['long string', { ...good, note: 'x'.repeat(21) }, 'too_large', 'note'],
  ];
  for (const [name, input, reason, field] of cases) {
    it(`refuses ${name} with reason ${reason}`, () => {
      const c = v.check(input);
      assert.equal(c.ok, false);
      if (c.ok) return;
      assert.equal(c.issues[0]?.reason, reason);
      assert.equal(c.issues[0]?.field, field);
      assert.throws(
        () => v.assert(input),
        (e: unknown) =>
          isBulwarkError(e, reason === 'too_large' ? 'ERR_INPUT_TOO_LARGE' : 'ERR_INPUT_INVALID') &&
          e.message.includes(reason) &&
          e.details['reason'] === reason,
      );
    });
  }

  it('reports every issue of a row, and every bad row', () => {
    const c = v.check([{ ...good, amount: -5, channel: 'x' }, good, { ...good, items: 0 }]);
    assert.equal(c.ok, false);
    if (c.ok) return;
    assert.deepEqual(
      c.issues.map((i) => [i.row, i.field, i.reason]),
      [
        [1, 'amount', 'bounds'],
        [1, 'channel', 'category'],
        [3, 'items', 'bounds'],
      ],
    );
  });

  it('enforces row, field and byte limits', () => {
    assert.throws(
      () => v.assert([good, good, good, good]),
      (e: unknown) => isBulwarkError(e, 'ERR_INPUT_TOO_LARGE') && /4 rows, the limit is 3/.test(e.message),
    );
    const many = Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`f${i}`, 1]));
    assert.throws(
      () => v.assert(many),
      (e: unknown) => isBulwarkError(e, 'ERR_INPUT_TOO_LARGE'),
    );
    const small = new InputValidator(schema, { limits: { maxBytes: 100 } });
    assert.throws(
      () => small.parseJson(JSON.stringify([good, good])),
      (e: unknown) => isBulwarkError(e, 'ERR_INPUT_TOO_LARGE') && /bytes/.test(e.message),
    );
    assert.throws(
      () => small.parseJson('{"amount": 1,'),
      (e: unknown) => isBulwarkError(e, 'ERR_INPUT_INVALID') && /not valid JSON/.test(e.message),
    );
    assert.throws(
      () => v.assert([]),
      (e: unknown) => isBulwarkError(e, 'ERR_INPUT_INVALID'),
    );
  });

  it('never quotes values of personal fields', () => {
    const c = v.check({ ...good, card_age_days: 123456789 });
    assert.equal(c.ok, true); // unbounded: fine
    const bounded = new InputValidator(
      validateSchema({
        version: 1,
        fields: [
          {
            name: 'ssn_digits',
            type: 'integer',
            sensitivity: 'sensitive',
            pii: 'national_id',
            bounds: { min: 0, max: 9 },
          },
        ],
      }),
    );
    try {
      bounded.assert({ ssn_digits: 123456789 });
      assert.fail('should throw');
    } catch (e) {
      assert.ok(isBulwarkError(e, 'ERR_INPUT_INVALID'));
      assert.ok(!e.message.includes('123456789'), e.message);
    }
    const pub = v.check({ ...good, amount: 123456789 });
    assert.ok(!pub.ok && pub.issues[0]?.message.includes('123456789'));
  });

  it('numeric strings only when allowed; unknown fields dropped when allowed', () => {
    const lax = new InputValidator(schema, { numericStrings: true, allowUnknownFields: true });
    const rows = lax.assert({ ...good, amount: ' 12.5 ', items: '3', extra: 'x' });
    assert.equal(rows[0]?.['amount'], 12.5);
    assert.equal(rows[0]?.['items'], 3);
    assert.ok(!('extra' in (rows[0] ?? {})));
    assert.equal(lax.check({ ...good, amount: '1e400' }).ok, false);
    assert.equal(lax.check({ ...good, amount: '0x10' }).ok, false);
  });

  it('checks its own options', () => {
    const named = (re: RegExp) => (e: unknown) =>
      isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && re.test(e.message);
    assert.throws(
      () => new InputValidator(schema, { fields: ['nope'] }),
      named(/^fields: expected fields of the schema/),
    );
    assert.throws(() => new InputValidator(schema, { limits: { maxRows: 0 } }), named(/^limits.maxRows/));
  });
});

describe('validateFeatures', () => {
  it('names the row and feature of a non-finite value; checks sizes', () => {
    const x = new Float32Array([1, 2, 3, Number.NaN]);
    assert.throws(
      () => validateFeatures(x, 2, 2, { names: ['a', 'b'] }),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_INPUT_INVALID') && /row 2, field "b": non_finite/.test(e.message),
    );
    assert.throws(
      () => validateFeatures(new Float32Array(3), 2, 2),
      (e: unknown) => isBulwarkError(e, 'ERR_INPUT_INVALID'),
    );
    assert.throws(
      () => validateFeatures(new Float32Array(4), 2, 2, { maxRows: 1 }),
      (e: unknown) => isBulwarkError(e, 'ERR_INPUT_TOO_LARGE'),
    );
    validateFeatures(new Float32Array([1, 2, 3, 4]), 2, 2);
  });
});
