import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { allCommands, buildProgram } from '../../src/cli/program.js';
import { ROOT, runBulwark, runBulwarkInProcess } from '../helpers/cli.js';

/** The space-separated path of a command below the root, e.g. `data synth`. */
function pathOf(c: { name(): string; parent: unknown }): string[] {
  const names: string[] = [];
  let cur = c as { name(): string; parent: unknown } | null;
  while (cur && (cur as { parent: unknown }).parent) {
    names.unshift(cur.name());
    cur = (cur as { parent: typeof cur }).parent;
  }
  return names;
}

describe('bulwark CLI', () => {
  it('--help lists the commands and the exit codes; exit 0', () => {
    const r = runBulwark(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: bulwark/);
    assert.match(r.stdout, /demo/);
    assert.match(r.stdout, /Exit codes:/);
  });

  it('--version prints the package version', () => {
    const r = runBulwark(['--version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout.trim(), /^\d+\.\d+\.\d+$/);
  });

  it('every command and subcommand has --help (exit 0, a usage line)', async () => {
    const cmds = allCommands(buildProgram()).filter((c) => c.name() !== 'help');
    assert.ok(cmds.length >= 2);
    // In this process (runCli, as bin/bulwark.js runs it): a new process per command (about 60) was
    // 0.5 s of CPU each, nearly all Node start-up. The process itself is checked by the --help test above.
    for (const c of cmds) {
      const p = pathOf(c);
      const r = await runBulwarkInProcess([...p, '--help']);
      assert.equal(r.code, 0, `bulwark ${p.join(' ')} --help exited ${r.code}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`Usage: bulwark ${p.join(' ')}`), p.join(' '));
      assert.ok(c.description().length > 0, `bulwark ${p.join(' ')} has a description`);
    }
  });

  it('an unknown option is a usage error: exit 2, one line with ERR_USAGE, no stack trace', () => {
    const r = runBulwark(['demo', '--no-such-option']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^bulwark: ERR_USAGE: unknown option '--no-such-option'/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  it('a command group without its subcommand shows its help and is a usage error', () => {
    for (const args of [[], ['data'], ['keys']]) {
      const r = runBulwark(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /Usage: bulwark/);
      assert.match(r.stderr, /bulwark: ERR_USAGE: a subcommand is needed/);
    }
    const j = runBulwark(['--json', 'data']);
    assert.equal(j.code, 2);
    assert.equal((JSON.parse(j.stderr) as { error: { code: string } }).error.code, 'ERR_USAGE');
  });

  it('an unknown command is a usage error', () => {
    const r = runBulwark(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ERR_USAGE/);
  });

  it('a bad option value names the option and exits 2 without writing anything', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-cli-'));
    const r = runBulwark(['demo', '--out', join(dir, 'out'), '--seed', 'abc']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ERR_USAGE: .*--seed.*expected an integer/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('--json reports usage errors as JSON on stderr, and nothing else there', () => {
    for (const args of [
      ['--json', 'demo', '--seed', '-1'],
      ['data', 'synth', '--bogus', '--json'],
    ]) {
      const r = runBulwark(args);
      assert.equal(r.code, 2);
      const parsed = JSON.parse(r.stderr) as { error: { code: string; message: string } };
      assert.equal(parsed.error.code, 'ERR_USAGE');
      assert.doesNotMatch(parsed.error.message, /^error: /);
    }
  });

  it('--version belongs to bulwark itself: after a command it is refused, nothing runs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-cli-'));
    const r = runBulwark(['data', 'synth', '--out', join(dir, 'x.csv'), '--version']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ERR_USAGE: --version is an option of bulwark itself/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('an unknown option typed with a value (a secret, say) is echoed without the value', () => {
    for (const json of [false, true]) {
      const r = runBulwark([
        ...(json ? ['--json'] : []),
        'keys',
        'list',
        '--keyring',
        'k.json',
        '--passphrase=hunter2',
      ]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /unknown option '--passphrase=…'/);
      assert.doesNotMatch(r.stderr, /hunter2/);
    }
  });

  it('a reader that closes the pipe early (`| head`) ends the command quietly, without a stack trace', async () => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'bulwark.js'), 'model', 'inspect', '--help'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Close our end at once: every later write of the child meets EPIPE.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.doesNotMatch(stderr, /EPIPE|Error|at /);
    assert.equal(code, 0);
  });
});
