import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { inferSchema, openCsv, type Schema, writeTransactionsCsv } from '../../src/data/index.js';
import { Keyring } from '../../src/keys/index.js';
import {
  type Manifest,
  manifestPathOf,
  protectCsv,
  readManifest,
  reencryptCsv,
  revealCsv,
  rewrapProtected,
  SubjectKeyStore,
} from '../../src/protect/index.js';
import { localKeyring, rejectsWith, TEST_SCRYPT, tempDir } from '../keys/helpers.js';

const ROWS = 400;

async function rows(path: string): Promise<(string | null)[][]> {
  const out: (string | null)[][] = [];
  for await (const r of await openCsv(path)) out.push([...r.values]);
  return out;
}

function lines(path: string): string[] {
  return readFileSync(path, 'utf8').replace(/\r\n/g, '\n').trimEnd().split('\n');
}

describe('protect and reveal CSV', () => {
  const dir = tempDir('bulwark-protect-');
  const src = join(dir, 'tx.csv');
  let schema: Schema;
  let kr: Keyring;
  let original: (string | null)[][];
  let header: string[];

  before(async () => {
    await writeTransactionsCsv(src, { rows: ROWS, fraudRate: 0.05, seed: 11 });
    schema = await inferSchema(src);
    kr = await localKeyring(dir, 'keys.json', 'pw');
    original = await rows(src);
    header = (await openCsv(src)).columns as string[];
  });

  it('encrypts exactly the personal columns, keeps the others byte for byte, and reveals the original', async () => {
    const out = join(dir, 'p.csv');
    const r = await protectCsv(src, out, { schema, keyring: kr, rowKey: 'transaction_id' });
    const personal = schema.fields
      .filter((f) => f.sensitivity === 'personal' || f.sensitivity === 'sensitive')
      .map((f) => f.name);
    assert.deepEqual(
      r.columns.map((c) => c.name),
      personal,
    );
    assert.ok(
      personal.includes('card_number') && personal.includes('email') && personal.includes('national_id'),
    );
    assert.equal(r.rows, ROWS);
    assert.deepEqual(
      r.kept,
      header.filter((h) => !personal.includes(h)),
    );
    const prot = await rows(out);
    for (let i = 0; i < ROWS; i++) {
      header.forEach((h, j) => {
        const a = original[i]![j]!;
        const b = prot[i]![j]!;
        if (personal.includes(h) && a !== null) {
          assert.notEqual(b, a);
          // Only for values of 6 characters or more: a random base64url ciphertext of ~50 characters
          // holds a given 3-letter name ("Ann") by chance with probability ~48/64^3, which made this
          // test fail about once in a hundred runs; at 6 characters the chance is ~1e-9 per value.
          if (a.length >= 6) assert.ok(!b.includes(a), `row ${i} ${h} leaks its plaintext`);
        } else assert.equal(b, a, `row ${i} column ${h} kept`);
      });
    }
    const m = await readManifest(manifestPathOf(out));
    assert.equal(m.rows, ROWS);
    assert.equal(m.deks.length, 1);
    assert.equal(
      m.deks[0]!.uses,
      r.columns.reduce((s, c) => s + c.values, 0),
    );
    const rev = join(dir, 'r.csv');
    const rr = await revealCsv(out, rev, { keyring: kr });
    assert.equal(rr.rows, ROWS);
    assert.deepEqual(lines(rev), lines(src));
  });

  it('reveals only the columns asked for; the rest stay encrypted', async () => {
    const out = join(dir, 'p2.csv');
    await protectCsv(src, out, { schema, keyring: kr });
    await revealCsv(out, join(dir, 'r2.csv'), { keyring: kr, columns: ['email'] });
    const r = await rows(join(dir, 'r2.csv'));
    const e = header.indexOf('email');
    const c = header.indexOf('card_number');
    assert.equal(r[3]![e], original[3]![e]);
    assert.notEqual(r[3]![c], original[3]![c]);
    await rejectsWith(
      () => revealCsv(out, join(dir, 'x.csv'), { keyring: kr, columns: ['amount'] }),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(
      () => revealCsv(out, join(dir, 'x.csv'), { keyring: kr, columns: ['no_such_column'] }),
      'ERR_COLUMN_NOT_FOUND',
    );
  });

  it('deterministic columns keep equality; blind indexes too; rows can be reordered with a row key', async () => {
    const out = join(dir, 'p3.csv');
    await protectCsv(src, out, {
      schema,
      keyring: kr,
      rowKey: 'transaction_id',
      deterministic: ['cardholder_id'],
      blindIndex: ['email'],
    });
    const p = await rows(out);
    const ph = (await openCsv(out)).columns;
    const ci = header.indexOf('cardholder_id');
    const ei = header.indexOf('email');
    const bi = ph.indexOf('email_bidx');
    assert.ok(bi > 0);
    for (let i = 0; i < ROWS; i++) {
      for (let j = i + 1; j < Math.min(ROWS, i + 40); j++) {
        assert.equal(p[i]![ci] === p[j]![ci], original[i]![ci] === original[j]![ci]);
        assert.equal(p[i]![bi] === p[j]![bi], original[i]![ei] === original[j]![ei]);
      }
    }
    // Reverse the data rows: with a row key, every value still opens.
    const text = lines(out);
    writeFileSync(out, `${[text[0], ...text.slice(1).reverse()].join('\n')}\n`);
    await revealCsv(out, join(dir, 'r3.csv'), { keyring: kr });
    assert.deepEqual(lines(join(dir, 'r3.csv')).slice(1).reverse(), lines(src).slice(1));
  });

  it('draws a new data key every dekMaxUses values and still reveals', async () => {
    const out = join(dir, 'p4.csv');
    const r = await protectCsv(src, out, { schema, keyring: kr, dekMaxUses: 1000 });
    assert.ok(r.dataKeys >= 4, `${r.dataKeys} keys`);
    const m = await readManifest(manifestPathOf(out));
    assert.ok(m.deks.every((d) => d.uses <= 1000));
    assert.equal(
      m.deks.reduce((s, d) => s + d.uses, 0),
      r.columns.reduce((s, c) => s + c.values, 0),
    );
    await revealCsv(out, join(dir, 'r4.csv'), { keyring: kr });
    assert.deepEqual(lines(join(dir, 'r4.csv')), lines(src));
    await rejectsWith(
      () => protectCsv(src, join(dir, 'p5.csv'), { schema, keyring: kr, dekMaxUses: 3 }),
      'ERR_INVALID_ARGUMENT',
    );
  });

  describe('tampering and bad input: a distinct code each, and no output', () => {
    const out = join(dir, 't.csv');
    before(async () => {
      await protectCsv(src, out, { schema, keyring: kr });
    });
    const failsWith = async (
      code: string,
      mutate: (l: string[]) => string[],
      manifest?: (m: Manifest) => unknown,
    ) => {
      const f = join(dir, `case-${code}-${Math.random().toString(36).slice(2)}.csv`);
      writeFileSync(f, `${mutate(lines(out)).join('\n')}\n`);
      const m = JSON.parse(readFileSync(manifestPathOf(out), 'utf8')) as Manifest;
      writeFileSync(manifestPathOf(f), JSON.stringify(manifest ? (manifest(m) ?? m) : m));
      const before = readdirSync(dir).length;
      await rejectsWith(() => revealCsv(f, `${f}.out`, { keyring: kr }), code);
      assert.equal(readdirSync(dir).length, before, 'nothing written');
    };
    const cell = (l: string[], row: number, col: string) => {
      const cols = l[0]!.split(',');
      return { cols, j: cols.indexOf(col), cells: l[row]!.split(',') };
    };

    it('a changed byte of a value is ERR_CIPHERTEXT_TAMPERED', async () => {
      await failsWith('ERR_CIPHERTEXT_TAMPERED', (l) => {
        const { j, cells } = cell(l, 5, 'email');
        const b = Buffer.from(cells[j]!, 'base64url');
        b[b.length - 3]! ^= 1;
        cells[j] = b.toString('base64url');
        l[5] = cells.join(',');
        return l;
      });
    });

    it('values swapped between rows or columns are ERR_CIPHERTEXT_TAMPERED', async () => {
      await failsWith('ERR_CIPHERTEXT_TAMPERED', (l) => {
        const a = cell(l, 2, 'email');
        const b = cell(l, 3, 'email');
        [a.cells[a.j], b.cells[b.j]] = [b.cells[b.j]!, a.cells[a.j]!];
        l[2] = a.cells.join(',');
        l[3] = b.cells.join(',');
        return l;
      });
      await failsWith('ERR_CIPHERTEXT_TAMPERED', (l) => {
        const a = cell(l, 2, 'email');
        const k = a.cols.indexOf('phone');
        [a.cells[a.j], a.cells[k]] = [a.cells[k]!, a.cells[a.j]!];
        l[2] = a.cells.join(',');
        return l;
      });
      // Without a row key the row number is bound: reordering rows is detected.
      await failsWith('ERR_CIPHERTEXT_TAMPERED', (l) => [l[0]!, l[2]!, l[1]!, ...l.slice(3)]);
    });

    it('a deleted protected value is ERR_CIPHERTEXT_TAMPERED, in a revealed column or not', async () => {
      const blank = (col: string) => (l: string[]) => {
        const { j, cells } = cell(l, 3, col);
        assert.ok(cells[j]!.length > 0);
        cells[j] = '';
        l[3] = cells.join(',');
        return l;
      };
      await failsWith('ERR_CIPHERTEXT_TAMPERED', blank('email'));
      const f = join(dir, 'blank-phone.csv');
      writeFileSync(f, `${blank('phone')(lines(out)).join('\n')}\n`);
      writeFileSync(manifestPathOf(f), readFileSync(manifestPathOf(out)));
      const e = await rejectsWith(
        () => revealCsv(f, `${f}.out`, { keyring: kr, columns: ['email'] }),
        'ERR_CIPHERTEXT_TAMPERED',
      );
      assert.match(e.message, /column "phone" holds \d+ protected values and 1 empty cells/);
      assert.equal(existsSync(`${f}.out`), false);
    });

    it('a truncated file is ERR_CIPHERTEXT_TRUNCATED; an unknown value version ERR_FORMAT_VERSION', async () => {
      await failsWith('ERR_CIPHERTEXT_TRUNCATED', (l) => l.slice(0, -3));
      await failsWith('ERR_FORMAT_VERSION', (l) => {
        const { j, cells } = cell(l, 4, 'email');
        const b = Buffer.from(cells[j]!, 'base64url');
        b[0] = 0x20;
        cells[j] = b.toString('base64url');
        l[4] = cells.join(',');
        return l;
      });
    });

    it('manifest edits are ERR_HEADER_TAMPERED; an unknown manifest version ERR_FORMAT_VERSION', async () => {
      await failsWith(
        'ERR_HEADER_TAMPERED',
        (l) => l,
        (m) => {
          m.columns[0]!.mode = 'deterministic';
        },
      );
      await failsWith(
        'ERR_HEADER_TAMPERED',
        (l) => l.slice(0, -3),
        (m) => {
          m.rows -= 3;
        },
      );
      await failsWith(
        'ERR_FORMAT_VERSION',
        (l) => l,
        (m) => ({ ...m, version: 2 }),
      );
      await failsWith(
        'ERR_KEY_UNWRAP',
        (l) => l,
        (m) => {
          const w = Buffer.from(m.deks[0]!.wrapped.wrapped, 'base64');
          w[50]! ^= 1;
          m.deks[0]!.wrapped.wrapped = w.toString('base64');
        },
      );
    });

    it('a column removed from the file is ERR_SCHEMA_MISMATCH', async () => {
      await failsWith('ERR_SCHEMA_MISMATCH', (l) => l.map((x) => x.split(',').slice(0, -1).join(',')));
    });

    it('wrong passphrase, another keyring, a destroyed key', async () => {
      await rejectsWith(() => Keyring.open(kr.path, { secret: { value: 'nope' } }), 'ERR_PASSPHRASE_WRONG');
      const other = await localKeyring(dir, 'other.json');
      await rejectsWith(() => revealCsv(out, join(dir, 'o.csv'), { keyring: other }), 'ERR_KEY_NOT_FOUND');
      const k2 = await localKeyring(dir, 'k2.json');
      const out2 = join(dir, 'd.csv');
      await protectCsv(src, out2, { schema, keyring: k2 });
      await k2.destroy('data', 1);
      await rejectsWith(() => revealCsv(out2, join(dir, 'o2.csv'), { keyring: k2 }), 'ERR_KEY_DESTROYED');
      assert.ok(!readdirSync(dir).includes('o.csv') && !readdirSync(dir).includes('o2.csv'));
    });

    it('protect: a schema column absent from the data is ERR_SCHEMA_MISMATCH, nothing written', async () => {
      const bad: Schema = {
        ...schema,
        fields: [
          ...schema.fields,
          { name: 'passport', type: 'string', nullable: true, sensitivity: 'sensitive' },
        ],
      };
      await rejectsWith(
        () => protectCsv(src, join(dir, 'n.csv'), { schema: bad, keyring: kr }),
        'ERR_SCHEMA_MISMATCH',
      );
      const fewer: Schema = { ...schema, fields: schema.fields.filter((f) => f.name !== 'amount') };
      await rejectsWith(
        () => protectCsv(src, join(dir, 'n.csv'), { schema: fewer, keyring: kr }),
        'ERR_SCHEMA_MISMATCH',
      );
      await rejectsWith(
        () => protectCsv(src, join(dir, 'n.csv'), { schema, keyring: kr, rowKey: 'email' }),
        'ERR_INVALID_ARGUMENT',
      );
      assert.ok(!readdirSync(dir).some((f) => f.startsWith('n.csv') || f.startsWith('.n.csv')));
    });
  });

  it('rotation: rewrap under a new KEK version, destroy the old one, still reveal; re-encryption', async () => {
    const k = await localKeyring(dir, 'rot.json');
    const out = join(dir, 'rot.csv');
    await protectCsv(src, out, { schema, keyring: k, dekMaxUses: 2000 });
    const before = readFileSync(out);
    await k.rotate('data');
    const n = await rewrapProtected(manifestPathOf(out), k);
    assert.ok(n >= 2);
    const m = await readManifest(manifestPathOf(out));
    assert.ok(m.deks.every((d) => d.wrapped.version === 2));
    assert.deepEqual(readFileSync(out), before, 'data untouched');
    await k.destroy('data', 1);
    await revealCsv(out, join(dir, 'rot.r.csv'), { keyring: k });
    assert.deepEqual(lines(join(dir, 'rot.r.csv')), lines(src));
    const re = await reencryptCsv(out, join(dir, 'rot2.csv'), { keyring: k });
    assert.notEqual(re.dataset, m.dataset);
    await revealCsv(join(dir, 'rot2.csv'), join(dir, 'rot2.r.csv'), { keyring: k });
    assert.deepEqual(lines(join(dir, 'rot2.r.csv')), lines(src));
  });

  it('erasure: destroying one subject makes exactly their values unreadable, everyone else intact', async () => {
    const k = await Keyring.create(join(dir, 'sub-keys.json'), {
      secret: { value: 'pw' },
      scrypt: TEST_SCRYPT,
    });
    await k.createKey('data');
    const store = await SubjectKeyStore.openOrCreate(join(dir, 'subjects.json'), k);
    const out = join(dir, 'sub.csv');
    const r = await protectCsv(src, out, {
      schema,
      keyring: k,
      subjects: { column: 'cardholder_id', store },
    });
    assert.ok((r.subjects ?? 0) > 10);
    const ci = header.indexOf('cardholder_id');
    const victim = original[0]![ci]!;
    const victimRows = original.map((row, i) => (row[ci] === victim ? i : -1)).filter((i) => i >= 0);
    assert.ok(victimRows.length >= 1);
    // While the protect run's store is open, no other process may change the store: an erasure made
    // then would be written over when the run saves (the erased subject's keys brought back).
    await rejectsWith(() => SubjectKeyStore.open(join(dir, 'subjects.json'), k), 'ERR_FILE_LOCKED');
    // Reading needs no lock.
    const reader = await SubjectKeyStore.open(join(dir, 'subjects.json'), k, { readOnly: true });
    await rejectsWith(() => reader.erase(victim), 'ERR_INVALID_ARGUMENT');
    await reader.close();
    await store.close();
    // Another process opens the store, erases the subject; backups of `out` are now useless for them.
    const s2 = await SubjectKeyStore.open(join(dir, 'subjects.json'), k);
    assert.equal(await s2.erase(victim), true);
    assert.equal(await s2.erase('nobody'), false);
    await s2.close();
    const s3 = await SubjectKeyStore.open(join(dir, 'subjects.json'), k);
    const rr = await revealCsv(out, join(dir, 'sub.r.csv'), { keyring: k, subjects: s3 });
    assert.equal(rr.erasedRows, victimRows.length);
    const back = await rows(join(dir, 'sub.r.csv'));
    const personal = new Set(r.columns.map((c) => c.name));
    for (let i = 0; i < ROWS; i++) {
      header.forEach((h, j) => {
        if (victimRows.includes(i) && personal.has(h)) assert.equal(back[i]![j], null, `erased ${h}`);
        else assert.equal(back[i]![j], original[i]![j], `row ${i} ${h}`);
      });
    }
    await rejectsWith(
      () => revealCsv(out, join(dir, 'sub.f.csv'), { keyring: k, subjects: s3, erased: 'fail' }),
      'ERR_KEY_DESTROYED',
    );
    // A forged handle is tampering, not erasure.
    const l = lines(out);
    assert.equal(l[0]!.split(',').at(-1), 'bulwark_subject');
    const cells = l[7]!.split(',');
    cells[cells.length - 1] = 'AAAAAAAAAAAAAAAAAAAAAA';
    l[7] = cells.join(',');
    writeFileSync(join(dir, 'sub2.csv'), `${l.join('\n')}\n`);
    writeFileSync(manifestPathOf(join(dir, 'sub2.csv')), readFileSync(manifestPathOf(out)));
    await rejectsWith(
      () => revealCsv(join(dir, 'sub2.csv'), join(dir, 'sub2.r.csv'), { keyring: k, subjects: s3 }),
      'ERR_CIPHERTEXT_TAMPERED',
    );
    // Store rotation re-wraps one key; subject keys are untouched and still open.
    await k.rotate('data');
    await s3.rewrap();
    await k.destroy('data', 1);
    const victimHandle = s3.handleOf(victim);
    await s3.close();
    const s4 = await SubjectKeyStore.open(join(dir, 'subjects.json'), k);
    assert.equal(s4.handleOf(victim), victimHandle);
    // The dataset's own keys were wrapped by the destroyed version: without a rewrap first, it is gone.
    await rejectsWith(
      () => revealCsv(out, join(dir, 'sub.g.csv'), { keyring: k, subjects: s4 }),
      'ERR_KEY_DESTROYED',
    );
    await rejectsWith(
      () =>
        protectCsv(src, join(dir, 'x.csv'), {
          schema,
          keyring: k,
          subjects: { column: 'cardholder_id', store: s4 },
          blindIndex: ['email'],
        }),
      'ERR_INVALID_ARGUMENT',
    );
    await s4.close();
  });
});
