import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Dataset, detectPii } from '../../src/data/index.js';

describe('PII findings carry a confidence and a reason', () => {
  it('name and values agreeing > values alone > name alone', () => {
    const cards = ['4111111111111111', '5500005555555559', '340000000000009', '6011000990139424'];
    const ds = new Dataset(
      [
        { name: 'card_number', type: 'string', values: cards },
        { name: 'x7', type: 'string', values: cards },
        { name: 'ssn', type: 'string', values: ['n/a', 'n/a', 'n/a', 'n/a'] },
      ],
      4,
    );
    const f = new Map(detectPii(ds).map((x) => [x.field, x]));
    const both = f.get('card_number')!;
    const values = f.get('x7')!;
    const name = f.get('ssn')!;
    assert.equal(both.by, 'name+values');
    assert.equal(values.by, 'values');
    assert.equal(name.by, 'name');
    assert.ok(both.confidence! > values.confidence! && values.confidence! > name.confidence!);
    assert.match(both.reason!, /column name "card_number" names card number, and 100 % of 4 sampled values/);
    assert.match(values.reason!, /^100 % of 4 sampled values have the form of card number$/);
    assert.match(name.reason!, /names national id \(but only 0 %/);
  });
});
