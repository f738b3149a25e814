import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeTransactionsCsv } from '../../src/data/index.js';
import { type CliRun, ROOT, runBulwark, runBulwarkInProcess } from '../helpers/cli.js';

/**
 * The rule every writing command follows (README, "The `bulwark` command"): an output is checked before
 * the work, an existing file is replaced only with --force, and a command never writes its result over
 * one of its own inputs, --force or not. These are the commands a user's walk through the README found
 * without that check: with them, `keys encrypt --out KEYRING` destroyed the keyring (and every key in
 * it), `data reveal --out MANIFEST` the only copy of the wrapped data keys.
 */
describe('bulwark: outputs never replace inputs, and existing files only with --force', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-outputs-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const p = (name: string) => join(dir, name);
  const pass = p('pass.txt');
  const kr = p('keys.json');
  const auth = ['--keyring', kr, '--passphrase-file', pass];

  /** The bytes of every file of the folder, to show that a refused run changed nothing. */
  function snapshot(): Map<string, string> {
    return new Map(readdirSync(dir).map((f) => [f, readFileSync(p(f)).toString('base64')]));
  }

  function assertRefused(r: CliRun, code: string, exit: number, before: Map<string, string>): void {
    assert.equal(r.code, exit, `${r.stderr}${r.stdout}`);
    assert.match(r.stderr, new RegExp(`^bulwark: ${code}: `));
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.deepEqual(snapshot(), before, 'nothing written, nothing replaced');
  }

  before(async () => {
    await writeTransactionsCsv(p('tx.csv'), { rows: 200, fraudRate: 0.1, seed: 1 });
    writeFileSync(pass, 'a long test passphrase\n', { mode: 0o600 });
    const r = runBulwark(['keys', 'init', ...auth, '--scrypt-log-n', '10']);
    assert.equal(r.code, 0, r.stderr);
    writeFileSync(p('plain.txt'), 'hello\n');
  });

  it('keys encrypt / decrypt: not over the keyring, the passphrase file or the input; existing only with --force', async () => {
    let r = runBulwark(['keys', 'encrypt', p('plain.txt'), '--out', p('plain.enc'), ...auth]);
    assert.equal(r.code, 0, r.stderr);
    const s = snapshot();
    for (const out of [kr, pass, p('plain.txt')]) {
      r = await runBulwarkInProcess(['keys', 'encrypt', p('plain.txt'), '--out', out, '--force', ...auth]);
      assertRefused(r, 'ERR_USAGE', 2, s);
      assert.match(r.stderr, /--out .* is also an input of this command/);
    }
    r = await runBulwarkInProcess(['keys', 'encrypt', p('plain.txt'), '--out', p('plain.enc'), ...auth]);
    assertRefused(r, 'ERR_FILE_EXISTS', 3, s);
    r = runBulwark(['keys', 'encrypt', p('plain.txt'), '--out', p('plain.enc'), '--force', ...auth]);
    assert.equal(r.code, 0, r.stderr);

    const s2 = snapshot();
    for (const out of [kr, pass, p('plain.enc')]) {
      r = await runBulwarkInProcess(['keys', 'decrypt', p('plain.enc'), '--out', out, '--force', ...auth]);
      assertRefused(r, 'ERR_USAGE', 2, s2);
    }
    r = await runBulwarkInProcess(['keys', 'decrypt', p('plain.enc'), '--out', p('plain.txt'), ...auth]);
    assertRefused(r, 'ERR_FILE_EXISTS', 3, s2);
    r = runBulwark(['keys', 'decrypt', p('plain.enc'), '--out', p('plain2.txt'), ...auth]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(p('plain2.txt'), 'utf8'), 'hello\n');
  });

  it('data protect / reveal / reencrypt: not over the data, its manifest, the schema or the keyring; existing only with --force', async () => {
    let r = runBulwark(['data', 'schema', p('tx.csv'), '--out', p('schema.yaml')]);
    assert.equal(r.code, 0, r.stderr);
    const protect = ['data', 'protect', p('tx.csv'), '--schema', p('schema.yaml'), ...auth];
    r = runBulwark([...protect, '--out', p('tx.p.csv')]);
    assert.equal(r.code, 0, r.stderr);
    const s = snapshot();
    for (const out of [p('tx.csv'), p('schema.yaml'), kr, pass]) {
      r = await runBulwarkInProcess([...protect, '--out', out, '--force']);
      assertRefused(r, 'ERR_USAGE', 2, s);
    }
    // The manifest written beside --out may not replace an input either.
    r = await runBulwarkInProcess([...protect, '--out', p('tx.p2.csv'), '--manifest', kr, '--force']);
    assertRefused(r, 'ERR_USAGE', 2, s);
    assert.match(r.stderr, /--manifest /);
    r = await runBulwarkInProcess([...protect, '--out', p('tx.p.csv')]);
    assertRefused(r, 'ERR_FILE_EXISTS', 3, s);
    r = runBulwark([...protect, '--out', p('tx.p.csv'), '--force']);
    assert.equal(r.code, 0, r.stderr);

    const s2 = snapshot();
    const reveal = ['data', 'reveal', p('tx.p.csv'), ...auth];
    // Before, --out MANIFEST replaced the wrapped data keys with plaintext: the data was lost.
    for (const out of [p('tx.p.csv'), p('tx.p.csv.bulwark.json'), kr, pass]) {
      r = await runBulwarkInProcess([...reveal, '--out', out, '--force']);
      assertRefused(r, 'ERR_USAGE', 2, s2);
    }
    r = await runBulwarkInProcess([...reveal, '--out', p('tx.csv')]);
    assertRefused(r, 'ERR_FILE_EXISTS', 3, s2);
    r = runBulwark([...reveal, '--out', p('tx.r.csv')]);
    assert.equal(r.code, 0, r.stderr);

    const s3 = snapshot();
    const reencrypt = ['data', 'reencrypt', p('tx.p.csv'), ...auth];
    for (const out of [p('tx.p.csv'), p('tx.p.csv.bulwark.json'), kr]) {
      r = await runBulwarkInProcess([...reencrypt, '--out', out, '--force']);
      assertRefused(r, 'ERR_USAGE', 2, s3);
    }
    r = await runBulwarkInProcess([...reencrypt, '--out', p('tx.r.csv')]);
    assertRefused(r, 'ERR_FILE_EXISTS', 3, s3);
    r = runBulwark([...reencrypt, '--out', p('tx.p3.csv')]);
    assert.equal(r.code, 0, r.stderr);
  });

  it('predict: --out checked before the work, never over the model or the data', async () => {
    let r = runBulwark(['train', '--data', p('tx.csv'), '--label', 'is_fraud', '--out', p('m.onnx')]);
    assert.equal(r.code, 0, r.stderr);
    const s = snapshot();
    // Before, --force wrote the predictions over the data file (or the model) it had just read.
    for (const out of [p('tx.csv'), p('m.onnx')]) {
      r = await runBulwarkInProcess([
        'predict',
        '--model',
        p('m.onnx'),
        '--data',
        p('tx.csv'),
        '--out',
        out,
        '--force',
      ]);
      assertRefused(r, 'ERR_USAGE', 2, s);
    }
    r = await runBulwarkInProcess([
      'predict',
      '--model',
      p('m.onnx'),
      '--data',
      p('tx.csv'),
      '--out',
      p('plain.txt'),
    ]);
    assertRefused(r, 'ERR_FILE_EXISTS', 3, s);
  });

  it('model keygen / audit keygen: both key files checked before either is written', async () => {
    writeFileSync(p('taken.key.pub'), 'someone else\n');
    const s = snapshot();
    // Before, the private key was written, then the public key refused: half a key pair left behind.
    let r = await runBulwarkInProcess(['model', 'keygen', '--out', p('taken.key')]);
    assertRefused(r, 'ERR_FILE_EXISTS', 3, s);
    r = await runBulwarkInProcess(['model', 'keygen', '--out', p('k.key'), '--public', p('k.key')]);
    assertRefused(r, 'ERR_USAGE', 2, s);
    // Before, an existing FILE.pub was silently replaced.
    r = await runBulwarkInProcess(['audit', 'keygen', '--name', 'test/log', '--out', p('taken.key')]);
    assertRefused(r, 'ERR_FILE_EXISTS', 3, s);
  });

  it('model protect: never over the model, the signing key, the keyring or the passphrase file', async () => {
    let r = runBulwark(['train', '--data', p('tx.csv'), '--label', 'is_fraud', '--out', p('m2.onnx')]);
    assert.equal(r.code, 0, r.stderr);
    r = runBulwark(['model', 'keygen', '--out', p('signer.key')]);
    assert.equal(r.code, 0, r.stderr);
    const protect = ['model', 'protect', p('m2.onnx'), '--sign-key', p('signer.key'), ...auth];
    const s = snapshot();
    for (const out of [p('m2.onnx'), p('signer.key'), kr, pass]) {
      r = await runBulwarkInProcess([...protect, '--out', out, '--force']);
      assertRefused(r, 'ERR_USAGE', 2, s);
    }
    r = await runBulwarkInProcess([...protect, '--out', p('plain.txt')]);
    assertRefused(r, 'ERR_FILE_EXISTS', 3, s);
    r = runBulwark([...protect, '--out', p('m2.bwm')]);
    assert.equal(r.code, 0, r.stderr);
  });

  it('train: --out never replaces the data, the evaluation set, the parent model or the audit store', async () => {
    let r = runBulwark(['train', '--data', p('tx.csv'), '--label', 'is_fraud', '--out', p('m3.onnx')]);
    assert.equal(r.code, 0, r.stderr);
    writeFileSync(p('eval.csv'), readFileSync(p('tx.csv')));
    const s = snapshot();
    const from = ['train', '--from', p('m3.onnx'), '--data', p('tx.csv'), '--eval', p('eval.csv')];
    // Before, the first two ran the whole continuation and then wrote the model over its input.
    for (const out of [p('m3.onnx'), p('eval.csv')]) {
      r = await runBulwarkInProcess([...from, '--label', 'is_fraud', '--out', out, '--force']);
      assertRefused(r, 'ERR_USAGE', 2, s);
    }
    r = await runBulwarkInProcess([
      'train',
      '--data',
      p('tx.csv'),
      '--label',
      'is_fraud',
      '--audit',
      p('plain.txt'),
      '--out',
      p('plain.txt'),
      '--force',
    ]);
    assertRefused(r, 'ERR_USAGE', 2, s);
  });

  it('data synth: an existing file is replaced only with --force (before, by default)', async () => {
    const s = snapshot();
    let r = await runBulwarkInProcess(['data', 'synth', '--rows', '10', '--seed', '1', '--out', p('tx.csv')]);
    assertRefused(r, 'ERR_FILE_EXISTS', 3, s);
    assert.match(r.stderr, /add --force/);
    // The old opt-in to refusing still parses, and still refuses.
    r = await runBulwarkInProcess(['data', 'synth', '--rows', '10', '--out', p('tx.csv'), '--no-clobber']);
    assertRefused(r, 'ERR_FILE_EXISTS', 3, s);
    r = runBulwark(['data', 'synth', '--rows', '10', '--seed', '1', '--out', p('plain.txt'), '--force']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(readFileSync(p('plain.txt'), 'utf8'), /^transaction_id,/);
    writeFileSync(p('plain.txt'), 'hello\n');
  });

  it('bench costs outside the repository: reads the shipped results, creates no folder', async () => {
    const from = join(ROOT, 'bench', 'results', 'costs.json');
    const s = snapshot();
    // Before, it read ./bench/results of the working folder: every row of a results file read "not measured".
    let r = runBulwark(['--json', 'bench', 'costs', '--from', from, '--no-write'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    const rows = (JSON.parse(r.stdout) as { rows: { verdict: string }[] }).rows;
    assert.ok(rows.length > 0);
    assert.equal(rows.filter((x) => x.verdict === 'not measured').length, 0);
    // Before, it created ./bench/results and ./docs to write into.
    r = await runBulwarkInProcess(['bench', 'costs', '--from', from], { cwd: dir });
    assertRefused(r, 'ERR_FILE_NOT_FOUND', 3, s);
  });
});
