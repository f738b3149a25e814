import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { writeTransactionsCsv } from '../../src/data/index.js';
import { type CliRun, inParallel, runBulwark, runBulwarkAsync, runBulwarkInProcess } from '../helpers/cli.js';
import { tempDir } from './helpers.js';

/** The `bulwark keys` and `bulwark data protect|reveal` commands, run as a user would. */
describe('bulwark keys / data protect CLI', () => {
  const dir = tempDir('bulwark-keys-cli-');
  const pass = join(dir, 'pass.txt');
  // A secret file only its owner can read (a world-readable one makes every command warn: below).
  writeFileSync(pass, 'a long demo passphrase\n', { mode: 0o600 });
  const kr = join(dir, 'keys.json');
  const auth = ['--keyring', kr, '--passphrase-file', pass];

  it('init, list, rotate, disable/enable, destroy; secrets never from argv', async () => {
    let r = runBulwark(['keys', 'init', ...auth, '--scrypt-log-n', '10']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /BULWARK_SECRET_FILE_EXPOSED/, 'a 0600 passphrase file: no warning');
    assert.match(r.stdout, /created keyring .* provider local/);
    assert.equal(statSync(kr).mode & 0o777, 0o600);
    assert.doesNotMatch(readFileSync(kr, 'utf8'), /demo passphrase/);
    // Two refused reads of the keyring: two processes at once.
    const [noSecret, wrong] = (await inParallel([
      () => runBulwarkAsync(['keys', 'list', '--keyring', kr]),
      () => runBulwarkAsync(['keys', 'list', '--keyring', kr], { env: { BULWARK_PASSPHRASE: 'wrong' } }),
    ])) as [CliRun, CliRun];
    r = noSecret;
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^bulwark: ERR_SECRET_MISSING: /);
    r = wrong;
    assert.equal(r.code, 5);
    assert.match(r.stderr, /ERR_PASSPHRASE_WRONG/);
    assert.doesNotMatch(r.stderr, /a long demo/);
    // A re-wrap that cannot be done (no such manifest) stops the rotation before the keyring changes.
    r = await runBulwarkInProcess([
      'keys',
      'rotate',
      'data',
      ...auth,
      '--rewrap',
      join(dir, 'none.bulwark.json'),
    ]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /ERR_FILE_NOT_FOUND/);
    // The data file given where its manifest belongs: named as the wrong kind of file.
    writeFileSync(join(dir, 'data.csv'), 'a,b\n1,2\n');
    r = await runBulwarkInProcess(['keys', 'rotate', 'data', ...auth, '--rewrap', join(dir, 'data.csv')]);
    assert.equal(r.code, 3);
    assert.match(
      r.stderr,
      /ERR_FORMAT_UNSUPPORTED: .*data\.csv is not a Bulwark protection manifest \(not JSON\)/,
    );
    r = runBulwark(['keys', 'rotate', 'data', ...auth, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { key: { version: number } }).key.version, 2);
    r = runBulwark(['keys', 'disable', 'data', '--key-version', '1', ...auth]);
    assert.equal(r.code, 0, r.stderr);
    r = runBulwark(['keys', 'list', ...auth, '--json']);
    const list = (JSON.parse(r.stdout) as { keys: { version: number; status: string; primary: boolean }[] })
      .keys;
    assert.deepEqual(
      list.map((k) => [k.version, k.status, k.primary]),
      [
        [1, 'disabled', false],
        [2, 'enabled', true],
      ],
    );
    r = await runBulwarkInProcess(['keys', 'destroy', 'data', '--key-version', '1', ...auth]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--yes/);
    r = runBulwark(['keys', 'destroy', 'data', '--key-version', '1', '--yes', ...auth]);
    assert.equal(r.code, 0, r.stderr);
    r = await runBulwarkInProcess(['keys', 'init', ...auth]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /ERR_FILE_EXISTS/);
    // A keyring whose first key cannot be made is not left behind to block the corrected command.
    const fileKr = join(dir, 'file-kr.json');
    r = await runBulwarkInProcess(['keys', 'init', '--provider', 'file', '--keyring', fileKr]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(existsSync(fileKr), false);
    writeFileSync(join(dir, 'kek.hex'), `${'ab'.repeat(32)}\n`);
    r = runBulwark([
      'keys',
      'init',
      '--provider',
      'file',
      '--keyring',
      fileKr,
      '--source-file',
      join(dir, 'kek.hex'),
    ]);
    assert.equal(r.code, 0, r.stderr);
  });

  it('encrypt / decrypt a file; a tampered file gives ERR_CIPHERTEXT_TAMPERED and no output', async () => {
    const f = join(dir, 'model.bin');
    writeFileSync(f, Buffer.alloc(200_000, 7));
    let r = runBulwark(['keys', 'encrypt', f, '--out', `${f}.enc`, '--frame-size', '65536', ...auth]);
    assert.equal(r.code, 0, r.stderr);
    const t = readFileSync(`${f}.enc`);
    t[t.length - 100]! ^= 1;
    writeFileSync(`${f}.bad`, t);
    // The intact and the tampered file are decrypted by two processes at once (separate outputs).
    const [dec, bad] = (await inParallel([
      () => runBulwarkAsync(['keys', 'decrypt', `${f}.enc`, '--out', `${f}.dec`, ...auth]),
      () => runBulwarkAsync(['keys', 'decrypt', `${f}.bad`, '--out', `${f}.out`, ...auth]),
    ])) as [CliRun, CliRun];
    r = dec;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(`${f}.dec`), readFileSync(f));
    r = bad;
    assert.equal(r.code, 5);
    assert.match(r.stderr, /^bulwark: ERR_CIPHERTEXT_TAMPERED: /);
    assert.throws(() => statSync(`${f}.out`));
  });

  it('encrypt / decrypt on worker threads (--threads, built worker script); a failing frame leaves no output', async () => {
    const f = join(dir, 'big.bin');
    const pt = Buffer.alloc(20 * 65536 + 5);
    for (let i = 0; i < pt.length; i++) pt[i] = (i * 31 + (i >> 9)) & 0xff;
    writeFileSync(f, pt);
    const frames = ['--frame-size', '65536', '--threads', '2'];
    let r = runBulwark(['keys', 'encrypt', f, '--out', `${f}.enc`, ...frames, ...auth]);
    assert.equal(r.code, 0, r.stderr);
    const t = readFileSync(`${f}.enc`);
    t[t.length - 5 * 65536]! ^= 1;
    writeFileSync(`${f}.bad`, t);
    // Three decryptions into separate outputs: two processes at a time.
    const [dec, bad, zero] = (await inParallel([
      () => runBulwarkAsync(['keys', 'decrypt', `${f}.enc`, '--out', `${f}.dec`, '--threads', '2', ...auth]),
      () => runBulwarkAsync(['keys', 'decrypt', `${f}.bad`, '--out', `${f}.out`, '--threads', '2', ...auth]),
      () => runBulwarkAsync(['keys', 'decrypt', `${f}.enc`, '--out', `${f}.x`, '--threads', '0', ...auth]),
    ])) as [CliRun, CliRun, CliRun];
    r = dec;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(readFileSync(`${f}.dec`).equals(pt));
    r = bad;
    assert.equal(r.code, 5);
    assert.match(r.stderr, /^bulwark: ERR_CIPHERTEXT_TAMPERED: .*frame 15 /);
    assert.throws(() => statSync(`${f}.out`));
    r = zero;
    assert.notEqual(r.code, 0);
  });

  it('data protect / reveal / erasure by subject, streaming through the CLI', async () => {
    const src = join(dir, 'tx.csv');
    await writeTransactionsCsv(src, { rows: 300, fraudRate: 0.05, seed: 3 });
    let r = runBulwark(['data', 'schema', src, '--out', join(dir, 'schema.yaml')]);
    assert.equal(r.code, 0, r.stderr);
    const out = join(dir, 'tx.protected.csv');
    const subj = ['--subject-column', 'cardholder_id', '--subjects', join(dir, 'subjects.json')];
    r = runBulwark([
      'data',
      'protect',
      src,
      '--schema',
      join(dir, 'schema.yaml'),
      '--out',
      out,
      ...subj,
      ...auth,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /protected 300 rows/);
    assert.match(r.stdout, /card_number: randomized, per-subject key/);
    assert.doesNotMatch(readFileSync(out, 'utf8'), /@example\./);
    r = runBulwark([
      'data',
      'reveal',
      out,
      '--out',
      join(dir, 'back.csv'),
      '--subjects',
      join(dir, 'subjects.json'),
      ...auth,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const norm = (p: string) => readFileSync(p, 'utf8').replace(/\r\n/g, '\n');
    assert.equal(norm(join(dir, 'back.csv')), norm(src));
    const victim = norm(src).split('\n')[1]!.split(',')[2]!;
    r = runBulwark([
      'keys',
      'destroy',
      '--subject',
      victim,
      '--subjects',
      join(dir, 'subjects.json'),
      '--yes',
      ...auth,
    ]);
    assert.equal(r.code, 0, r.stderr);
    // Two reveals after the erasure, into separate files: two processes at once.
    const reveal = (to: string, ...extra: string[]) => [
      'data',
      'reveal',
      out,
      '--out',
      join(dir, to),
      '--subjects',
      join(dir, 'subjects.json'),
      ...extra,
      ...auth,
    ];
    const [back2, back3] = (await inParallel([
      () => runBulwarkAsync([...reveal('back2.csv'), '--json']),
      () => runBulwarkAsync(reveal('back3.csv', '--erased', 'fail')),
    ])) as [CliRun, CliRun];
    r = back2;
    assert.equal(r.code, 0, r.stderr);
    assert.ok((JSON.parse(r.stdout) as { erasedRows: number }).erasedRows >= 1);
    assert.doesNotMatch(norm(join(dir, 'back2.csv')), new RegExp(`,${victim},`));
    r = back3;
    assert.equal(r.code, 5);
    assert.match(r.stderr, /ERR_KEY_DESTROYED/);
    r = await runBulwarkInProcess([
      'data',
      'protect',
      src,
      '--schema',
      join(dir, 'nope.yaml'),
      '--out',
      join(dir, 'x.csv'),
      ...auth,
    ]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /ERR_FILE_NOT_FOUND/);
  });
  it('a passphrase file every user can read: one warning with its code, path and mode, never its content; 0640 is quiet', async () => {
    const open = join(dir, 'open-pass.txt');
    writeFileSync(open, 'a long demo passphrase\n');
    chmodSync(open, 0o644); // whatever the umask
    const list = (file: string) => runBulwark(['keys', 'list', '--keyring', kr, '--passphrase-file', file]);
    const r = list(open);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => l.includes('BULWARK_SECRET_FILE_EXPOSED'));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0] ?? '',
      /^bulwark: warning: BULWARK_SECRET_FILE_EXPOSED: the keyring passphrase .*open-pass\.txt can be read by every user of this machine \(mode 0644\): chmod 600/,
    );
    assert.doesNotMatch(r.stderr, /a long demo|trace-warnings|\(node:/);
    // Group-readable (what a Kubernetes secret mounted with fsGroup and defaultMode 0440 is): quiet.
    const group = join(dir, 'group-pass.txt');
    writeFileSync(group, 'a long demo passphrase\n');
    chmodSync(group, 0o640);
    assert.doesNotMatch(list(group).stderr, /BULWARK_SECRET_FILE_EXPOSED/);
  });
});
