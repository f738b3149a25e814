import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { allCommands, buildProgram, COMMAND_MODULES } from '../../src/cli/program.js';
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
    const cmds = allCommands(await buildProgram()).filter((c) => c.name() !== 'help');
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

  it('each command is loaded on its own: its module registers that command and no other', async () => {
    const full = await buildProgram();
    assert.deepEqual(
      full.commands.map((c) => c.name()),
      COMMAND_MODULES.map(([name]) => name),
    );
    for (const [name] of COMMAND_MODULES) {
      const one = await buildProgram({ only: name });
      assert.deepEqual(
        one.commands.map((c) => c.name()),
        [name],
      );
      // The same subcommands and options as in the whole program.
      const shape = (c: (typeof full.commands)[number]): string[] =>
        allCommands(c).map((x) => `${x.name()}:${x.options.map((o) => o.flags).join(',')}`);
      assert.deepEqual(shape(one.commands[0]!), shape(full.commands.find((c) => c.name() === name)!), name);
    }
  });

  it('a command run from the command line loads only its own modules', () => {
    // A loader hook records every module the process loads (the hooks run on their own thread in
    // Node 20, hence a file). `audit` needs neither the data readers nor the ML code; `--version`
    // needs no command at all. The whole program would load src/data and src/ml for either.
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-lazy-'));
    const log = join(dir, 'loaded.txt');
    writeFileSync(
      join(dir, 'hooks.mjs'),
      `import { appendFileSync } from 'node:fs';
       export async function load(url, ctx, next) { appendFileSync(${JSON.stringify(log)}, url + '\\n'); return next(url, ctx); }`,
    );
    writeFileSync(
      join(dir, 'register.mjs'),
      `import { register } from 'node:module'; register(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});`,
    );
    const loadedBy = (args: string[]): string[] => {
      writeFileSync(log, '');
      const r = spawnSync(
        process.execPath,
        ['--import', join(dir, 'register.mjs'), join(ROOT, 'bin', 'bulwark.js'), ...args],
        {
          cwd: ROOT,
          encoding: 'utf8',
        },
      );
      assert.equal(r.status, 0, r.stderr);
      return readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l.includes('/dist/'));
    };
    const audit = loadedBy(['audit', '--help']);
    assert.ok(
      audit.some((u) => u.includes('/dist/cli/commands/audit.js')),
      'the audit command was loaded',
    );
    for (const folder of [
      '/dist/data/',
      '/dist/ml/',
      '/dist/cli/commands/train.js',
      '/dist/cli/commands/query.js',
    ])
      assert.ok(!audit.some((u) => u.includes(folder)), `bulwark audit --help loaded ${folder}`);
    const version = loadedBy(['--version']);
    assert.ok(!version.some((u) => u.includes('/dist/cli/commands/')), 'bulwark --version loaded a command');
    // The whole program (top-level help) still loads every command.
    const all = loadedBy(['--help']);
    for (const [name] of COMMAND_MODULES)
      assert.ok(
        all.some((u) => u.includes(`/dist/cli/commands/${name}.js`)),
        name,
      );
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
