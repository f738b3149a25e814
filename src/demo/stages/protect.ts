import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditEventInput } from '../../audit/index.js';
import { fileDigest, isBulwarkError, sha256Digest, writeFileAtomic } from '../../core/index.js';
import { CsvWriter, Dataset, isPersonal, openCsv, schemaToYaml } from '../../data/index.js';
import { Keyring } from '../../keys/index.js';
import { protectCsv, revealCsv, SubjectKeyStore } from '../../protect/index.js';
import type { Block } from '../../report/index.js';
import type { DemoStage } from '../stage.js';

const PASSPHRASE_FILE = 'DEMO-ONLY-keyring-passphrase.txt';
const SAMPLE_COLUMNS = [
  'first_name',
  'card_number',
  'email',
  'date_of_birth',
  'amount',
  'category',
  'is_fraud',
];

/** What a report may show of a plaintext value: its first characters only. */
function masked(v: string | null): string {
  if (v === null) return '';
  return v.length <= 3 ? '•••' : `${v.slice(0, 3)}…`;
}

/** What a reader of the protected file sees, shortened. */
function shortened(v: string | null): string {
  if (v === null) return '';
  return v.length > 18 ? `${v.slice(0, 16)}…` : v;
}

async function firstRows(
  path: string,
  n: number,
): Promise<{ columns: readonly string[]; rows: (string | null)[][] }> {
  const reader = await openCsv(path, { maxRows: n });
  const rows: (string | null)[][] = [];
  for await (const r of reader) rows.push([...r.values]);
  return { columns: reader.columns, rows };
}

/**
 * Stage 3: protect the personal fields before anything trains on them. A local keyring (demo-only
 * passphrase, generated and kept in a 0600 file beside it) wraps per-cardholder data keys; every
 * personal column is encrypted cell by cell, every other column is kept, so training still has its
 * features. A small sample then shows erasure of one cardholder and tamper detection.
 */
export const protectStage: DemoStage = {
  id: 'protect',
  title: 'Protecting personal data',
  async run(ctx) {
    const src = ctx.state.dataPath;
    const schema = ctx.state.schema;
    if (!src || !schema) throw new Error('the protect stage needs the data and schema stages');
    const dir = join(ctx.options.outDir, 'keys');
    await mkdir(dir, { recursive: true });
    // A fresh keyring each run: the demo folder is the demo's own.
    for (const f of ['keyring.json', 'subjects.json', 'sample-subjects.json', PASSPHRASE_FILE]) {
      await rm(join(dir, f), { force: true });
    }
    const passFile = join(dir, PASSPHRASE_FILE);
    await writeFileAtomic(passFile, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
    await writeFileAtomic(
      join(dir, 'README.txt'),
      `The passphrase in ${PASSPHRASE_FILE} was generated for this demo only. A real keyring's\n` +
        'passphrase comes from a secret store, an environment variable or a prompt (docs/keys.md),\n' +
        'or its keys live in an HSM (provider pkcs11).\n',
    );
    // scrypt at 2^15 keeps the demo quick; `bulwark keys init` defaults to 2^17.
    const keyring = await Keyring.create(join(dir, 'keyring.json'), {
      secret: { file: passFile },
      scrypt: { N: 2 ** 15, r: 8, p: 1 },
    });
    const kek = await keyring.createKey('data');
    const hasSubject = schema.fields.some((f) => f.name === 'cardholder_id');
    const hasRowKey = schema.fields.some((f) => f.name === 'transaction_id' && !isPersonal(f));
    const out = join(ctx.options.outDir, 'transactions.protected.csv');
    const store = hasSubject
      ? await SubjectKeyStore.openOrCreate(join(dir, 'subjects.json'), keyring)
      : undefined;
    try {
      const t0 = performance.now();
      const report = await protectCsv(src, out, {
        schema,
        keyring,
        ...(hasRowKey ? { rowKey: 'transaction_id' } : {}),
        ...(store ? { subjects: { column: 'cardholder_id', store } } : {}),
        onProgress: (rows) =>
          ctx.progress(Math.min(0.8, rows / Math.max(1, ctx.state.dataset?.rowCount ?? rows))),
      });
      const seconds = (performance.now() - t0) / 1000;
      const before = await firstRows(src, 3);
      const after = await firstRows(out, 3);
      const shown = SAMPLE_COLUMNS.filter((c) => before.columns.includes(c));
      const personal = new Set(report.columns.map((c) => c.name));
      const sampleRows: string[][] = [];
      for (let i = 0; i < before.rows.length; i++) {
        sampleRows.push(
          shown.map((c) => {
            const v = before.rows[i]![before.columns.indexOf(c)]!;
            return personal.has(c) ? masked(v) : (v ?? '');
          }),
        );
        sampleRows.push(shown.map((c) => shortened(after.rows[i]![after.columns.indexOf(c)]!)));
      }
      ctx.progress(0.85);

      // Erasure and tampering on a small sample (the full file would take as long again).
      const sample = join(dir, 'sample.csv');
      const head = await firstRows(src, 200);
      const w = await CsvWriter.create(sample, head.columns, { mode: 0o600 });
      for (const r of head.rows) await w.write(r);
      await w.commit();
      let erasedRows = 0;
      let othersIntact = false;
      let tamperCode = '';
      if (hasSubject) {
        const sampleStore = await SubjectKeyStore.openOrCreate(join(dir, 'sample-subjects.json'), keyring);
        const sp = join(dir, 'sample.protected.csv');
        await protectCsv(sample, sp, {
          schema,
          keyring,
          subjects: { column: 'cardholder_id', store: sampleStore },
        });
        const victim = head.rows[0]![head.columns.indexOf('cardholder_id')]!;
        await sampleStore.erase(victim);
        const rp = join(dir, 'sample.revealed.csv');
        const rv = await revealCsv(sp, rp, { keyring, subjects: sampleStore });
        erasedRows = rv.erasedRows;
        const back = await firstRows(rp, 200);
        const ci = head.columns.indexOf('cardholder_id');
        othersIntact = head.rows.every(
          (r, i) => r[ci] === victim || r.every((v, j) => v === back.rows[i]![j]),
        );
        await rm(rp, { force: true });
        // Change one character of a stored card number (of a cardholder not erased: an erased
        // subject's values are unreadable whatever their bytes).
        const stored = await firstRows(sp, 200);
        const row = head.rows.findIndex((r) => r[ci] !== victim);
        const cell = stored.rows[row]![stored.columns.indexOf('card_number')]!;
        const forged = `${cell.slice(0, 10)}${cell[10] === 'A' ? 'B' : 'A'}${cell.slice(11)}`;
        await writeFileAtomic(sp, readFileSync(sp, 'utf8').replace(cell, forged));
        try {
          await revealCsv(sp, rp, { keyring, subjects: sampleStore });
          tamperCode = 'not detected';
        } catch (e) {
          tamperCode = isBulwarkError(e) ? e.code : String(e);
        }
        await sampleStore.close();
        await rm(sample, { force: true });
      }
      ctx.progress(0.9);

      // Later stages train on the protected file: it keeps every non-personal column. What they get
      // in memory is only those kept columns: personal values are never held in clear again.
      const kept = report.kept.filter((c) => c !== ctx.state.label);
      if (kept.length > 0) {
        ctx.state.dataPath = out;
        ctx.state.schema = { ...schema, fields: schema.fields.filter((f) => !personal.has(f.name)) };
        const ds = ctx.state.dataset;
        if (ds)
          ctx.state.dataset = new Dataset(
            ds.columns.filter((c) => !personal.has(c.name)),
            ds.rowCount,
          );
      }
      const srcBytes = statSync(src).size;
      const outBytes = statSync(out).size;
      const values = report.columns.reduce((s, c) => s + c.values, 0);
      const blocks: Block[] = [
        {
          kind: 'text',
          text:
            `Every personal field (${report.columns.length} columns) was encrypted cell by cell under per-cardholder data keys ` +
            'wrapped by a passphrase-sealed local keyring; the other columns are kept as they were, so training still sees ' +
            'amounts, times, merchants and the label. Each value is bound to its dataset, column, row and key: one copied ' +
            'elsewhere fails to decrypt. The sample shows the first characters of the original values only.',
        },
        {
          kind: 'table',
          caption: 'Three rows before (masked) and after protection (as stored)',
          columns: ['', ...shown],
          rows: sampleRows.map((r, i) => [i % 2 === 0 ? `row ${i / 2 + 1} before` : 'after', ...r]),
        },
        {
          kind: 'facts',
          facts: [
            ['rows protected', report.rows],
            ['values encrypted', values],
            ['protected columns', report.columns.map((c) => c.name).join(', ')],
            ['columns kept', report.kept.length],
            ['data keys', store ? `one per cardholder (${report.subjects ?? 0})` : report.dataKeys],
            ['time', `${seconds.toFixed(1)} s (${Math.round(values / seconds)} values/s)`],
            ['size', `${srcBytes} -> ${outBytes} bytes`],
            ['keyring', 'local, scrypt-sealed (keys/keyring.json)'],
            [
              'erasure (200-row sample)',
              hasSubject
                ? `1 cardholder erased: ${erasedRows} rows unreadable, all others intact: ${othersIntact}`
                : 'n/a',
            ],
            ['tamper test (one byte changed)', tamperCode || 'n/a'],
          ],
        },
      ];
      // The lineage link: the protected file comes from the generated one, under these keys.
      const events: AuditEventInput[] = [
        {
          type: 'key.created',
          data: {
            keyId: `${kek.key}.v${kek.version}`,
            algorithm: 'AES-256-GCM',
            provider: 'keyring',
            purpose: 'field encryption key wrapping',
          },
        },
        {
          type: 'dataset.protected',
          data: {
            datasetDigest: await fileDigest(out),
            sourceDigest: await fileDigest(src),
            schemaDigest: sha256Digest(schemaToYaml(schema)),
            protectedFields: report.columns.map((c) => c.name),
            keyIds: [`${kek.key}.v${kek.version}`],
            rows: report.rows,
          },
        },
      ];
      return {
        blocks,
        events,
        summary: {
          rows: report.rows,
          protectedColumns: report.columns.length,
          values,
          subjects: report.subjects ?? 0,
          erasedRows,
          othersIntact,
          tamperDetected: tamperCode === 'ERR_CIPHERTEXT_TAMPERED',
          trainingOnProtected: ctx.state.dataPath === out,
        },
      };
    } finally {
      store?.close();
      await keyring.close();
    }
  },
};
