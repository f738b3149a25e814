/**
 * `bulwark data synth` end to end through the built executable: the summary, determinism, usage
 * errors (exit 2, ERR_USAGE, nothing written) and Ctrl-C (exit 1, ERR_ABORTED, nothing written).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TRANSACTION_COLUMNS } from '../../src/data/synth/index.js';
import { type CliRun, inParallel, ROOT, runBulwarkAsync, runBulwarkInProcess } from '../helpers/cli.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'bulwark-synth-cli-'));
}

describe('bulwark data synth', () => {
  it('writes the CSV and a JSON summary; the same seed gives the same bytes', async () => {
    const dir = tempDir();
    const a = join(dir, 'a.csv');
    const b = join(dir, 'b.csv');
    const c = join(dir, 'c.csv');
    // Three independent runs (separate files), two processes at a time.
    // The same seeded synthesis twice (with and without --json): the files must be identical.
    const seeded = (out: string) => [
      'data',
      'synth',
      '--rows',
      '3000',
      '--fraud-rate',
      '0.05',
      '--seed',
      '12',
      '--out',
      out,
    ];
    const [r, r2, r3] = (await inParallel([
      () => runBulwarkAsync(['--json', ...seeded(a)]),
      () => runBulwarkAsync(seeded(b)),
      // Without --seed a random seed is used and reported.
      () => runBulwarkAsync(['--json', 'data', 'synth', '--rows', '100', '--out', c, '--include-scenario']),
    ])) as [CliRun, CliRun, CliRun];
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(s['rows'], 3000);
    assert.equal(s['seed'], '12');
    assert.equal(s['path'], a);
    assert.equal(s['columns'], TRANSACTION_COLUMNS.length);
    assert.equal(typeof s['rowsPerSecond'], 'number');
    const fraud = s['fraudRows'] as number;
    assert.ok(Math.abs(fraud / 3000 - 0.05) < 0.01, `${fraud} fraud rows`);
    const lines = readFileSync(a, 'utf8').split('\r\n');
    assert.equal(lines[0], TRANSACTION_COLUMNS.join(','));
    assert.equal(lines.length, 3002); // header, rows, and the empty string after the last CRLF
    assert.equal(lines.slice(1, -1).filter((l) => l.endsWith(',1')).length, fraud);

    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stdout, /wrote 3000 transactions to .*b\.csv/);
    assert.match(r2.stdout, /seed: 12 /);
    assert.ok(readFileSync(a).equals(readFileSync(b)));

    // Without --seed a random seed is used and reported.
    assert.equal(r3.code, 0, r3.stderr);
    const s3 = JSON.parse(r3.stdout) as Record<string, unknown>;
    assert.match(String(s3['seed']), /^\d+$/);
    assert.equal(s3['columns'], TRANSACTION_COLUMNS.length + 1);
  });

  it('a bad option value exits 2 with ERR_USAGE naming the option, and writes nothing', async () => {
    const dir = tempDir();
    const out = join(dir, 'tx.csv');
    const cases: [string[], RegExp][] = [
      [['--rows', '0'], /--rows/],
      [['--rows', 'abc'], /--rows/],
      [['--rows', '1.5'], /--rows/],
      [['--rows', '-10'], /--rows/],
      [['--fraud-rate', '0.6'], /--fraud-rate/],
      [['--fraud-rate', '-0.1'], /--fraud-rate/],
      [['--fraud-rate', 'lots'], /--fraud-rate/],
      [['--seed', '-1'], /--seed/],
      [['--seed', 'x'], /--seed/],
      [['--cardholders', '0'], /--cardholders/],
      [['--start', 'yesterday'], /--start/],
      [['--label-noise', '0.9'], /--label-noise/],
    ];
    // Every run is refused before any work and without writing: one at a time, in this process.
    const runs = await inParallel(
      [
        ...cases.map(
          ([args]) =>
            () =>
              runBulwarkInProcess(['data', 'synth', '--rows', '100', '--out', out, ...args]),
        ),
        () => runBulwarkInProcess(['data', 'synth', '--rows', '100']),
        () => runBulwarkInProcess(['data', 'synth', '--rows', '100', '--out', dir]),
        () => runBulwarkInProcess(['--json', 'data', 'synth', '--rows', 'abc', '--out', out]),
      ],
      1,
    );
    for (const [i, [args, name]] of cases.entries()) {
      const r = runs[i] as CliRun;
      assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code} ${r.stderr}`);
      assert.match(r.stderr, /^bulwark: ERR_USAGE: /, args.join(' '));
      assert.match(r.stderr, name, args.join(' '));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(existsSync(out), false, args.join(' '));
    }
    const [missing, folder, json] = runs.slice(cases.length) as [CliRun, CliRun, CliRun];
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /ERR_USAGE: .*--out/);
    assert.equal(folder.code, 2);
    assert.match(folder.stderr, /ERR_USAGE: --out: .* is a folder/);
    assert.equal(json.code, 2);
    const err = JSON.parse(json.stderr.trim().split('\n').at(-1) as string) as { error: { code: string } };
    assert.equal(err.error.code, 'ERR_USAGE');
    assert.deepEqual(readdirSync(dir), []);
  });

  it('Ctrl-C stops the run with ERR_ABORTED and leaves no file behind', async () => {
    const dir = tempDir();
    const out = join(dir, 'tx.csv');
    const child = spawn(
      process.execPath,
      [join(ROOT, 'bin', 'bulwark.js'), 'data', 'synth', '--rows', '50000000', '--seed', '1', '--out', out],
      { env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    let running = true;
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => {
        running = false;
        resolve(code);
      }),
    );
    // The temporary file appears once the signal handler is installed and generation has begun.
    while (running && readdirSync(dir).length === 0) await new Promise((r) => setTimeout(r, 20));
    assert.ok(running, `exited before the signal: ${stderr}`);
    child.kill('SIGINT');
    const code = await exited;
    assert.equal(code, 1, stderr);
    assert.match(stderr, /^bulwark: ERR_ABORTED: /m);
    assert.deepEqual(readdirSync(dir), []);
  });
});
