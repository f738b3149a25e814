import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { loadSchema, readDatasetWithDigest } from '../../src/data/index.js';
import { Keyring } from '../../src/keys/index.js';
import { onnxMetadata } from '../../src/ml/index.js';
import {
  dekContext,
  type Manifest,
  manifestMac,
  manifestPathOf,
  ProtectedRowsCheck,
  protectCsv,
  readManifest,
} from '../../src/protect/index.js';
import { META_PROTECTED_DATA } from '../../src/train/index.js';
import { type CliRun, runBulwarkInProcess } from '../helpers/cli.js';
import { localKeyring, rejectsWith, tempDir } from '../keys/helpers.js';
import { HEADER, readLines, rows, SCHEMA } from './fixture.js';

/**
 * `bulwark train` on a protected CSV (a FILE.bulwark.json manifest beside it) checks the file against
 * its manifest before any training: the manifest's MAC and the rows as read (row digest, counts), with
 * the keyring; refuses without one (ERR_DATA_UNVERIFIED) unless --no-verify-protected, which is
 * recorded. Attacker: can write the protected CSV, holds no key.
 */

describe('bulwark train verifies a protected CSV before training on it', () => {
  const dir = tempDir('bulwark-train-protected-');
  const p = (f: string) => join(dir, f);
  const pass = p('pass.txt');
  const auth = ['--keyring', p('keys.json'), '--passphrase-file', pass];
  /** The protected training file, a second protected batch and a protected evaluation set. */
  const data = p('tx.p.csv');
  const batch = p('batch.p.csv');
  const evalSet = p('eval.p.csv');
  let header: string[];

  before(async () => {
    writeFileSync(pass, 'pw\n');
    writeFileSync(p('schema.yaml'), SCHEMA);
    const schema = await loadSchema(p('schema.yaml'));
    const kr = await localKeyring(dir, 'keys.json', 'pw');
    try {
      for (const [src, out, seed] of [
        [p('tx.csv'), data, 1],
        [p('batch.csv'), batch, 2],
        [p('eval.csv'), evalSet, 3],
      ] as const) {
        writeFileSync(src, `${[HEADER, ...rows(400, seed, `t${seed}-`)].join('\n')}\n`);
        await protectCsv(src, out, { schema, keyring: kr, rowKey: 'id' });
      }
    } finally {
      await kr.close();
    }
    header = readLines(data)[0]!.split(',');
  });

  /** A copy of protected `file` (with its manifest) whose lines `edit` changed. */
  function tampered(file: string, name: string, edit: (lines: string[]) => string[]): string {
    const copy = p(name);
    writeFileSync(copy, `${edit(readLines(file)).join('\n')}\n`);
    writeFileSync(manifestPathOf(copy), readFileSync(manifestPathOf(file)));
    return copy;
  }

  const trainArgs = (file: string, out: string) => [
    '--json',
    'train',
    '--data',
    file,
    '--label',
    'label',
    '--epochs',
    '3',
    '--out',
    out,
  ];

  function refused(r: CliRun, code: string, out: string): void {
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, new RegExp(`"code":"${code}"`), r.stderr);
    assert.equal(existsSync(out), false, 'no model written');
  }

  it('an untampered protected file trains; the model, the result and the audit event record it as verified', async () => {
    const key = p('log.key');
    const db = p('audit.db');
    let r = await runBulwarkInProcess(['audit', 'keygen', '--name', 'bulwark.test/tp', '--out', key]);
    assert.equal(r.code, 0, r.stderr);
    r = await runBulwarkInProcess(['audit', 'checkpoint', '--store', db, '--signing-key', key]);
    assert.equal(r.code, 0, r.stderr);
    const out = p('ok.onnx');
    r = await runBulwarkInProcess([...trainArgs(data, out), ...auth, '--audit', db]);
    assert.equal(r.code, 0, r.stderr);
    const m = await readManifest(manifestPathOf(data));
    const res = JSON.parse(r.stdout) as {
      protectedData: unknown;
      auditEvent: string;
      test: { accuracy: number };
    };
    assert.deepEqual(res.protectedData, { dataset: m.dataset, verified: true });
    assert.ok(res.test.accuracy > 0.7, String(res.test.accuracy));
    assert.deepEqual(JSON.parse(onnxMetadata(readFileSync(out))[META_PROTECTED_DATA] ?? 'null'), {
      dataset: m.dataset,
      verified: true,
    });
    r = await runBulwarkInProcess(['--json', 'audit', 'tail', '--store', db, '-n', '1']);
    assert.equal(r.code, 0, r.stderr);
    const [ev] = JSON.parse(r.stdout) as {
      id: string;
      type: string;
      data: { hyperparameters: Record<string, unknown> };
    }[];
    assert.equal(ev?.type, 'model.trained');
    assert.equal(ev?.id, res.auditEvent);
    assert.equal(ev?.data.hyperparameters['protectedDataset'], m.dataset);
    assert.equal(ev?.data.hyperparameters['protectedVerified'], true);
  });

  it('a kept cell flipped (the label) is ERR_CIPHERTEXT_TAMPERED and no model is written', async () => {
    const at = header.indexOf('label');
    const file = tampered(data, 'flip.csv', (l) => {
      const c = l[7]!.split(',');
      c[at] = c[at] === 'yes' ? 'no' : 'yes';
      l[7] = c.join(',');
      return l;
    });
    const out = p('flip.onnx');
    const r = await runBulwarkInProcess([...trainArgs(file, out), ...auth]);
    refused(r, 'ERR_CIPHERTEXT_TAMPERED', out);
    assert.match(r.stderr, /the rows differ from those protected/);
  });

  it("a person's protected values moved with their row key onto another row are ERR_CIPHERTEXT_TAMPERED", async () => {
    const moved = new Set(['id', 'name', 'email']);
    const file = tampered(data, 'moved.csv', (l) => {
      const a = l[3]!.split(',');
      const b = l[9]!.split(',');
      for (let i = 0; i < header.length; i++) if (moved.has(header[i]!)) [a[i], b[i]] = [b[i]!, a[i]!];
      assert.notEqual(a.join(','), l[3]);
      l[3] = a.join(',');
      l[9] = b.join(',');
      return l;
    });
    const out = p('moved.onnx');
    refused(await runBulwarkInProcess([...trainArgs(file, out), ...auth]), 'ERR_CIPHERTEXT_TAMPERED', out);
  });

  it('a row replaced by a copy of another, or a duplicate appended, is ERR_CIPHERTEXT_TAMPERED', async () => {
    const out = p('dup.onnx');
    const replaced = tampered(data, 'dup.csv', (l) => {
      l[5] = l[4]!;
      return l;
    });
    refused(
      await runBulwarkInProcess([...trainArgs(replaced, out), ...auth]),
      'ERR_CIPHERTEXT_TAMPERED',
      out,
    );
    const appended = tampered(data, 'dup2.csv', (l) => [...l, l[4]!]);
    const r = await runBulwarkInProcess([...trainArgs(appended, out), ...auth]);
    refused(r, 'ERR_CIPHERTEXT_TAMPERED', out);
    assert.match(r.stderr, /more rows than the 400 protected/);
    // And a row removed: the file was truncated.
    const removed = tampered(data, 'cut.csv', (l) => l.slice(0, -1));
    refused(
      await runBulwarkInProcess([...trainArgs(removed, out), ...auth]),
      'ERR_CIPHERTEXT_TRUNCATED',
      out,
    );
  });

  it('an altered manifest is ERR_HEADER_TAMPERED', async () => {
    const file = tampered(data, 'badm.csv', (l) => l);
    const m = JSON.parse(readFileSync(manifestPathOf(file), 'utf8')) as Manifest;
    writeFileSync(manifestPathOf(file), JSON.stringify({ ...m, rows: m.rows + 1 }));
    const out = p('badm.onnx');
    refused(await runBulwarkInProcess([...trainArgs(file, out), ...auth]), 'ERR_HEADER_TAMPERED', out);
  });

  it('a manifest present but no keyring is ERR_DATA_UNVERIFIED, naming --keyring and the opt-out', async () => {
    const out = p('nokey.onnx');
    const r = await runBulwarkInProcess(trainArgs(data, out));
    refused(r, 'ERR_DATA_UNVERIFIED', out);
    assert.match(r.stderr, /--data \S+tx\.p\.csv is a protected dataset/);
    assert.match(r.stderr, /give --keyring FILE/);
    assert.match(r.stderr, /--no-verify-protected/);
    // The human form too (exit status 5, the code first).
    const h = await runBulwarkInProcess(trainArgs(data, out).slice(1));
    assert.equal(h.code, 5);
    assert.match(h.stderr, /^bulwark: ERR_DATA_UNVERIFIED: /);
  });

  it('--no-verify-protected trains without the keyring, even on an altered file, and records it as unverified', async () => {
    const at = header.indexOf('label');
    const file = tampered(data, 'optout.csv', (l) => {
      const c = l[7]!.split(',');
      c[at] = c[at] === 'yes' ? 'no' : 'yes';
      l[7] = c.join(',');
      return l;
    });
    const out = p('optout.onnx');
    const r = await runBulwarkInProcess([...trainArgs(file, out), '--no-verify-protected']);
    assert.equal(r.code, 0, r.stderr);
    const m = await readManifest(manifestPathOf(data));
    assert.deepEqual((JSON.parse(r.stdout) as { protectedData: unknown }).protectedData, {
      dataset: m.dataset,
      verified: false,
    });
    assert.deepEqual(JSON.parse(onnxMetadata(readFileSync(out))[META_PROTECTED_DATA] ?? 'null'), {
      dataset: m.dataset,
      verified: false,
    });
    // The human form warns.
    const h = await runBulwarkInProcess([
      ...trainArgs(file, p('optout2.onnx')).slice(1),
      '--no-verify-protected',
    ]);
    assert.equal(h.code, 0, h.stderr);
    assert.match(
      h.stderr,
      /WARNING: --no-verify-protected: --data \S+ is a protected dataset .* NOT checked/,
    );
  });

  it('a manifest written before the row digest existed is ERR_DATA_UNVERIFIED unless --no-verify-protected', async () => {
    const file = tampered(data, 'legacy.csv', (l) => l);
    const mpath = manifestPathOf(file);
    const m = await readManifest(mpath);
    // What an earlier release wrote: no rowDigest, MAC'd without it (the test holds the keyring).
    const real = await Keyring.open(p('keys.json'), { secret: { value: 'pw' } });
    const dek0 = await real.unwrapKey(m.deks[0]!.wrapped, dekContext(m.dataset, 0));
    await real.close();
    const { rowDigest: _d, mac: _m, ...body } = m;
    writeFileSync(mpath, JSON.stringify({ ...body, mac: manifestMac(body, dek0) }));
    dek0.fill(0);
    const out = p('legacy.onnx');
    const r = await runBulwarkInProcess([...trainArgs(file, out), ...auth]);
    refused(r, 'ERR_DATA_UNVERIFIED', out);
    assert.match(r.stderr, /no row digest/);
    assert.match(r.stderr, /data reencrypt/);
    const ok = await runBulwarkInProcess([...trainArgs(file, out), '--no-verify-protected']);
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('DP training: a tampered file is refused before any budget is spent; an untampered one trains, verified', async () => {
    const ledger = p('ledger.sqlite');
    let r = await runBulwarkInProcess(['query', 'budget', 'set', 'tx', '--epsilon', '5', '--ledger', ledger]);
    assert.equal(r.code, 0, r.stderr);
    const dp = (file: string, out: string) => [
      ...trainArgs(file, out),
      '--schema',
      p('schema.yaml'),
      '--features',
      'x1,x2,channel,hour',
      '--dp-epsilon',
      '1',
      '--ledger',
      ledger,
      '--budget',
      'tx',
      '--seeded-noise',
      '3',
    ];
    const at = header.indexOf('label');
    const file = tampered(data, 'dp-flip.csv', (l) => {
      const c = l[11]!.split(',');
      c[at] = c[at] === 'yes' ? 'no' : 'yes';
      l[11] = c.join(',');
      return l;
    });
    const bad = p('dp-bad.onnx');
    refused(await runBulwarkInProcess([...dp(file, bad), ...auth]), 'ERR_CIPHERTEXT_TAMPERED', bad);
    refused(await runBulwarkInProcess(dp(data, bad)), 'ERR_DATA_UNVERIFIED', bad);
    const status = async () => {
      const s = await runBulwarkInProcess(['--json', 'query', 'budget', 'status', 'tx', '--ledger', ledger]);
      assert.equal(s.code, 0, s.stderr);
      return (JSON.parse(s.stdout) as { spent: { epsilon: number } }).spent.epsilon;
    };
    assert.equal(await status(), 0, 'nothing spent on refused runs');
    const out = p('dp.onnx');
    r = await runBulwarkInProcess([...dp(data, out), ...auth]);
    assert.equal(r.code, 0, r.stderr);
    const m = await readManifest(manifestPathOf(data));
    const res = JSON.parse(r.stdout) as { protectedData: unknown; privacy: { epsilon: number } };
    assert.deepEqual(res.protectedData, { dataset: m.dataset, verified: true });
    assert.equal(res.privacy.epsilon, 1);
    assert.equal(await status(), 1);
    assert.deepEqual(JSON.parse(onnxMetadata(readFileSync(out))[META_PROTECTED_DATA] ?? 'null'), {
      dataset: m.dataset,
      verified: true,
    });
  });

  it('--from: a protected --data and --eval are verified with the keyring (not refused as a package-only option); a tampered --eval is refused', async () => {
    const base = p('base.onnx');
    let r = await runBulwarkInProcess([
      ...trainArgs(data, base),
      '--model',
      'mlp',
      '--hidden',
      '8',
      '--seed',
      '1',
      ...auth,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const from = (d: string, e: string, out: string) => [
      '--json',
      'train',
      '--from',
      base,
      '--data',
      d,
      '--eval',
      e,
      '--label',
      'label',
      '--epochs',
      '2',
      '--max-clean-drop',
      '1',
      '--max-robust-drop',
      '1',
      '--out',
      out,
    ];
    const at = header.indexOf('label');
    const badEval = tampered(evalSet, 'eval-flip.csv', (l) => {
      const c = l[2]!.split(',');
      c[at] = c[at] === 'yes' ? 'no' : 'yes';
      l[2] = c.join(',');
      return l;
    });
    const bad = p('next-bad.onnx');
    refused(
      await runBulwarkInProcess([...from(batch, badEval, bad), ...auth]),
      'ERR_CIPHERTEXT_TAMPERED',
      bad,
    );
    const out = p('next.onnx');
    r = await runBulwarkInProcess([...from(batch, evalSet, out), ...auth]);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { protectedData: unknown; evalProtectedData: unknown };
    assert.deepEqual(res.protectedData, {
      dataset: (await readManifest(manifestPathOf(batch))).dataset,
      verified: true,
    });
    assert.deepEqual(res.evalProtectedData, {
      dataset: (await readManifest(manifestPathOf(evalSet))).dataset,
      verified: true,
    });
    // The new model records its own batch, not the parent's data.
    assert.deepEqual(JSON.parse(onnxMetadata(readFileSync(out))[META_PROTECTED_DATA] ?? 'null'), {
      dataset: (await readManifest(manifestPathOf(batch))).dataset,
      verified: true,
    });
  });

  it('--require-protected refuses a plain --data or --eval (ERR_DATA_UNVERIFIED), trains a verified protected one, and refuses the opt-out', async () => {
    const out = p('req.onnx');
    // The plain source of the protected file: no manifest beside it.
    let r = await runBulwarkInProcess([...trainArgs(p('tx.csv'), out), ...auth, '--require-protected']);
    refused(r, 'ERR_DATA_UNVERIFIED', out);
    assert.match(r.stderr, /--data \S+tx\.csv has no protection manifest beside it/);
    assert.match(r.stderr, /"option":"--require-protected"/);
    // Together with --no-verify-protected it contradicts itself: a usage error, before any work.
    r = await runBulwarkInProcess([...trainArgs(data, out), '--require-protected', '--no-verify-protected']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /"code":"ERR_USAGE"/);
    assert.equal(existsSync(out), false);
    r = await runBulwarkInProcess([...trainArgs(data, out), ...auth, '--require-protected']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      (JSON.parse(r.stdout) as { protectedData: { verified: boolean } }).protectedData.verified,
      true,
    );
  });

  it('--out is never the manifest beside --data, whatever --force says', async () => {
    const before = readFileSync(manifestPathOf(data));
    const r = await runBulwarkInProcess([...trainArgs(data, manifestPathOf(data)), ...auth, '--force']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /is also an input of this command/);
    assert.deepEqual(readFileSync(manifestPathOf(data)), before);
  });
});

describe('ProtectedRowsCheck on the rows a dataset is built from (onRecord)', () => {
  const dir = tempDir('bulwark-rows-check-');

  it('checks the pass the dataset comes from when the file is read twice (a late misfit), and still catches an edit', async () => {
    // "code" looks numeric for the first rows, then is text: with inferRows 5 the file is read twice.
    const src = join(dir, 'r.csv');
    const lines = ['id,name,code,label'];
    for (let i = 0; i < 40; i++)
      lines.push(`r${i},Person ${i},${i < 20 ? i : `c${i}`},${i % 2 ? 'yes' : 'no'}`);
    writeFileSync(src, `${lines.join('\n')}\n`);
    writeFileSync(
      join(dir, 's.yaml'),
      'version: 1\nfields:\n  - { name: id, type: string }\n  - { name: name, type: string, sensitivity: personal }\n  - { name: code, type: string }\n  - { name: label, type: string }\n',
    );
    const kr = await localKeyring(dir);
    const out = join(dir, 'r.p.csv');
    try {
      await protectCsv(src, out, { schema: await loadSchema(join(dir, 's.yaml')), keyring: kr });
      const read = async (file: string) => {
        const check = await ProtectedRowsCheck.open(file, { keyring: kr, manifestPath: manifestPathOf(out) });
        let passes = 0;
        try {
          const r = await readDatasetWithDigest(file, {
            inferRows: 5,
            onRecord: (values, index, line) => {
              if (index === 0) {
                passes++;
                check.restart();
              }
              check.add(values, index, line);
            },
          });
          check.columns(r.dataset.columnNames);
          check.finish();
          return { rows: r.dataset.rowCount, passes };
        } finally {
          check.destroy();
        }
      };
      assert.deepEqual(await read(out), { rows: 40, passes: 2 });
      // A kept cell of one row edited (its id: the file has no row key).
      const edited = join(dir, 'edited.csv');
      const l = readLines(out);
      assert.match(l[4]!, /^r3,/);
      l[4] = `r3x${l[4]!.slice(2)}`;
      writeFileSync(edited, `${l.join('\n')}\n`);
      await rejectsWith(() => read(edited), 'ERR_CIPHERTEXT_TAMPERED');
    } finally {
      await kr.close();
    }
  });
});
