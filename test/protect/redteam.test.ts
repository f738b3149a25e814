import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { inferSchema, openCsv, type Schema, writeTransactionsCsv } from '../../src/data/index.js';
import type { Keyring } from '../../src/keys/index.js';
import {
  dekContext,
  type Manifest,
  manifestMac,
  manifestPathOf,
  protectCsv,
  readManifest,
  reencryptCsv,
  revealCsv,
  SubjectKeyStore,
} from '../../src/protect/index.js';
import { localKeyring, rejectsWith, tempDir } from '../keys/helpers.js';

/**
 * Red-team regressions for protected datasets (attacker: can write the protected CSV and its
 * manifest, holds no key).
 */

/** The data lines of a CSV file as cells (no quoted commas in the cells this test touches). */
function readLines(path: string): string[] {
  return readFileSync(path, 'utf8').replace(/\r\n/g, '\n').trimEnd().split('\n');
}

describe('protected CSV: the whole row is bound, not only the protected values', () => {
  const dir = tempDir('bulwark-redteam-protect-');
  const src = join(dir, 'tx.csv');
  let schema: Schema;
  let kr: Keyring;
  let header: string[];
  let protectedCols: Set<string>;

  before(async () => {
    await writeTransactionsCsv(src, { rows: 60, fraudRate: 0.2, seed: 5 });
    schema = await inferSchema(src);
    kr = await localKeyring(dir);
  });

  /** Protects `src` (with or without a row key) to a fresh file; returns its path. */
  async function protect(
    name: string,
    opts: { rowKey?: string; blindIndex?: string[] } = {},
  ): Promise<string> {
    const out = join(dir, name);
    const r = await protectCsv(src, out, { schema, keyring: kr, ...opts });
    header = readLines(out)[0]!.split(',');
    protectedCols = new Set(r.columns.map((c) => c.name));
    return out;
  }

  /** Edits the stored file's lines, reveals, and expects `code` with no output left behind. */
  async function revealFails(file: string, code: string, edit: (l: string[]) => string[]): Promise<void> {
    const copy = `${file}.edited.csv`;
    writeFileSync(copy, `${edit(readLines(file)).join('\n')}\n`);
    writeFileSync(manifestPathOf(copy), readFileSync(manifestPathOf(file)));
    const out = join(dir, 'revealed.csv');
    await rejectsWith(() => revealCsv(copy, out, { keyring: kr }), code);
    assert.equal(existsSync(out), false, 'nothing written');
  }

  function findLine(lines: string[], pred: (cells: string[]) => boolean): number {
    const i = lines.findIndex((l, j) => j > 0 && !l.includes('"') && pred(l.split(',')));
    assert.ok(i > 0, 'a line to edit');
    return i;
  }

  it("moving a person's values with their row key onto another transaction is ERR_CIPHERTEXT_TAMPERED", async () => {
    const file = await protect('rk.csv', { rowKey: 'transaction_id' });
    // Before the fix this revealed cleanly: person A now owned transaction B (amount, merchant, label).
    await revealFails(file, 'ERR_CIPHERTEXT_TAMPERED', (l) => {
      const a = findLine(l, () => true);
      const b = findLine(l, (c) => c.length === header.length && l[a] !== c.join(','));
      const ca = l[a]!.split(',');
      const cb = l[b]!.split(',');
      for (let i = 0; i < header.length; i++) {
        if (header[i] === 'transaction_id' || protectedCols.has(header[i]!)) {
          const t = ca[i]!;
          ca[i] = cb[i]!;
          cb[i] = t;
        }
      }
      l[a] = ca.join(',');
      l[b] = cb.join(',');
      return l;
    });
  });

  it('a kept column edited (a fraud label flipped) is ERR_CIPHERTEXT_TAMPERED, with or without a row key', async () => {
    for (const [name, rowKey] of [
      ['flip-rk.csv', 'transaction_id'],
      ['flip.csv', undefined],
    ] as const) {
      const file = await protect(name, rowKey ? { rowKey } : {});
      const at = header.indexOf('is_fraud');
      await revealFails(file, 'ERR_CIPHERTEXT_TAMPERED', (l) => {
        const i = findLine(l, (c) => c.length === header.length);
        const c = l[i]!.split(',');
        c[at] = c[at] === '1' ? '0' : '1';
        l[i] = c.join(',');
        return l;
      });
    }
  });

  it('a row replaced by a copy of another, or a blind index edited, is ERR_CIPHERTEXT_TAMPERED', async () => {
    const file = await protect('dup.csv', { rowKey: 'transaction_id', blindIndex: ['email'] });
    await revealFails(file, 'ERR_CIPHERTEXT_TAMPERED', (l) => {
      l[2] = l[1]!;
      return l;
    });
    const at = header.indexOf('email_bidx');
    assert.ok(at > 0);
    await revealFails(file, 'ERR_CIPHERTEXT_TAMPERED', (l) => {
      const i = findLine(l, (c) => c[at] !== '');
      const j = findLine(l, (c) => c[at] !== '' && c[at] !== l[i]!.split(',')[at]);
      const ci = l[i]!.split(',');
      ci[at] = l[j]!.split(',')[at]!;
      l[i] = ci.join(',');
      return l;
    });
  });

  it('with a row key, re-ordered rows still reveal (documented); the data is the source', async () => {
    const file = await protect('order.csv', { rowKey: 'transaction_id' });
    const lines = readLines(file);
    const reordered = [lines[0]!, ...lines.slice(1).reverse()];
    const copy = join(dir, 'order2.csv');
    writeFileSync(copy, `${reordered.join('\n')}\n`);
    writeFileSync(manifestPathOf(copy), readFileSync(manifestPathOf(file)));
    const r = await revealCsv(copy, join(dir, 'order-out.csv'), { keyring: kr });
    assert.equal(r.rows, 60);
    const want = readLines(src).slice(1).sort();
    const got = readLines(join(dir, 'order-out.csv')).slice(1).sort();
    assert.deepEqual(got, want);
  });

  it('re-encryption refuses an edited file too', async () => {
    const file = await protect('re.csv', { rowKey: 'transaction_id' });
    const copy = join(dir, 're-edited.csv');
    const l = readLines(file);
    const at = header.indexOf('amount');
    const i = findLine(l, (c) => c.length === header.length);
    const c = l[i]!.split(',');
    c[at] = '99999.00';
    l[i] = c.join(',');
    writeFileSync(copy, `${l.join('\n')}\n`);
    writeFileSync(manifestPathOf(copy), readFileSync(manifestPathOf(file)));
    const out = join(dir, 're-out.csv');
    await rejectsWith(() => reencryptCsv(copy, out, { keyring: kr }), 'ERR_CIPHERTEXT_TAMPERED');
    assert.equal(existsSync(out), false);
  });

  it('the row digest cannot be stripped from the manifest; a manifest written without one still opens', async () => {
    const file = await protect('legacy.csv', { rowKey: 'transaction_id' });
    const mpath = manifestPathOf(file);
    const m = await readManifest(mpath);
    assert.match(m.rowDigest ?? '', /^[A-Za-z0-9+/]{43}=$/);
    const { rowDigest: _digest, ...stripped } = m;
    writeFileSync(mpath, JSON.stringify(stripped));
    await rejectsWith(() => revealCsv(file, join(dir, 'x.csv'), { keyring: kr }), 'ERR_HEADER_TAMPERED');
    // What earlier Bulwark versions wrote: the same manifest without the field, MAC'd without it.
    const dek0 = await kr.unwrapKey(m.deks[0]!.wrapped, dekContext(m.dataset, 0));
    const { mac: _mac, ...body } = stripped as Manifest;
    const legacy: Manifest = { ...body, mac: manifestMac(body, dek0) };
    dek0.fill(0);
    writeFileSync(mpath, JSON.stringify(legacy));
    const r = await revealCsv(file, join(dir, 'legacy-out.csv'), { keyring: kr });
    assert.equal(r.rows, 60);
    // Re-encrypting an old file gives it a manifest with the digest.
    await reencryptCsv(file, join(dir, 'upgraded.csv'), { keyring: kr });
    assert.ok((await readManifest(manifestPathOf(join(dir, 'upgraded.csv')))).rowDigest);
  });
});

describe('crypto-shredding: a subject erased, then seen again in new data', () => {
  const dir = tempDir('bulwark-redteam-subjects-');
  const src = join(dir, 'tx.csv');
  let schema: Schema;
  let kr: Keyring;
  let cardholders: string[];

  before(async () => {
    await writeTransactionsCsv(src, { rows: 40, fraudRate: 0.1, seed: 9 });
    schema = await inferSchema(src);
    kr = await localKeyring(dir);
    cardholders = [];
    for await (const r of await openCsv(src)) cardholders.push(r.values[2]!);
  });

  async function protectWith(store: string, out: string): Promise<void> {
    const st = await SubjectKeyStore.openOrCreate(store, kr);
    try {
      await protectCsv(src, out, {
        schema,
        keyring: kr,
        rowKey: 'transaction_id',
        subjects: { column: 'cardholder_id', store: st },
      });
    } finally {
      await st.close();
    }
  }

  async function reveal(store: string, file: string, erased: 'blank' | 'fail' = 'blank') {
    const st = await SubjectKeyStore.open(store, kr, { readOnly: true });
    try {
      return await revealCsv(file, `${file}.revealed.csv`, { keyring: kr, subjects: st, erased });
    } finally {
      await st.close();
    }
  }

  async function erase(store: string, subject: string): Promise<void> {
    const st = await SubjectKeyStore.open(store, kr);
    try {
      assert.equal(await st.erase(subject), true);
    } finally {
      await st.close();
    }
  }

  it("old data still reveals, with the erased subject's values blank, after the subject reappears", async () => {
    const store = join(dir, 'subjects.json');
    const old = join(dir, 'old.csv');
    await protectWith(store, old);
    assert.equal(JSON.parse(readFileSync(store, 'utf8')).version, 1, 'a store needing nothing new stays v1');
    const victim = cardholders[0]!;
    const victimRows = cardholders.filter((c) => c === victim).length;
    await erase(store, victim);
    assert.equal((await reveal(store, old)).erasedRows, victimRows);
    // The subject comes back in new data: new keys.
    const fresh = join(dir, 'new.csv');
    await protectWith(store, fresh);
    // Before the fix: ERR_CIPHERTEXT_TAMPERED here, and nobody's data in old.csv could be revealed.
    const r = await reveal(store, old);
    assert.equal(JSON.parse(readFileSync(store, 'utf8')).version, 2, 'the store records the new keys start');
    assert.equal(r.erasedRows, victimRows);
    const lines = readLines(`${old}.revealed.csv`);
    const at = lines[0]!.split(',').indexOf('cardholder_id');
    assert.equal(lines.slice(1).filter((l) => l.split(',')[at] === victim).length, 0, 'erased values blank');
    const source = readLines(src);
    for (let i = 1; i < source.length; i++)
      if (cardholders[i - 1] !== victim) assert.equal(lines[i], source[i], `row ${i}: everyone else intact`);
    await rejectsWith(() => reveal(store, old, 'fail'), 'ERR_KEY_DESTROYED');
    // The new data is readable in full, the reappeared subject included.
    assert.equal((await reveal(store, fresh)).erasedRows, 0);
    assert.deepEqual(readLines(`${fresh}.revealed.csv`), readLines(src));
    // Erased a second time: both lives read as erased.
    await erase(store, victim);
    assert.equal((await reveal(store, old)).erasedRows, victimRows);
    assert.equal((await reveal(store, fresh)).erasedRows, victimRows);
  });

  it('a store written before (version 1, no generation recorded for the erasure) behaves the same', async () => {
    const store = join(dir, 'legacy.json');
    const old = join(dir, 'legacy-old.csv');
    await protectWith(store, old);
    const victim = cardholders[3]!;
    await erase(store, victim);
    // What an earlier Bulwark wrote on erasure: the handle listed as erased, nothing else.
    const doc = JSON.parse(readFileSync(store, 'utf8')) as Record<string, unknown>;
    delete doc['erasedBefore'];
    doc['version'] = 1;
    writeFileSync(store, JSON.stringify(doc));
    await protectWith(store, join(dir, 'legacy-new.csv'));
    const victimRows = cardholders.filter((c) => c === victim).length;
    assert.equal((await reveal(store, old)).erasedRows, victimRows);
    assert.equal((await reveal(store, join(dir, 'legacy-new.csv'))).erasedRows, 0);
  });
});
