import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { inferSchema, type Schema, writeTransactionsCsv } from '../../src/data/index.js';
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
