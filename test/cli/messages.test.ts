import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { allCommands, buildProgram } from '../../src/cli/program.js';
import { runBulwark, runBulwarkInProcess } from '../helpers/cli.js';

/** Error messages a user meets when a command is given the wrong kind of file: they say what is wrong. */
describe('bulwark: messages name the real problem', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-messages-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('attest verify --at document on a file that is no Nitro document does not claim Nitro documents have no time', async () => {
    const doc = join(dir, 'data.csv');
    writeFileSync(doc, 'a,b\n1,2\n');
    const r = await runBulwarkInProcess(['attest', 'verify', doc, '--format', 'nitro', '--at', 'document']);
    assert.equal(r.code, 2, r.stderr);
    // Before: "--at document: a nitro document carries no timestamp" (it does: its COSE payload's).
    assert.match(
      r.stderr,
      /^bulwark: ERR_USAGE: --at document: no timestamp found in .*data\.csv \(not a nitro document/,
    );
    const s = await runBulwarkInProcess(['attest', 'verify', doc, '--format', 'sev-snp', '--at', 'document']);
    assert.equal(s.code, 2, s.stderr);
    assert.match(s.stderr, /a sev-snp report carries no timestamp/);
  });

  it('--help never prints $BULWARK_LEDGER (a postgres:// URL may hold a password); the variable is still the default', async () => {
    const env = { BULWARK_LEDGER: 'postgres://analyst:s3cret-pw@db.invalid/ledger' };
    for (const args of [
      ['query', 'count', '--help'],
      ['query', 'budget', 'set', '--help'],
      ['query', 'budget', 'status', '--help'],
      ['query', 'budget', 'history', '--help'],
    ]) {
      const r = await runBulwarkInProcess(args, { env });
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout + r.stderr, /s3cret-pw|analyst:/, args.join(' '));
      assert.match(r.stdout, /default\s+\$BULWARK_LEDGER/, args.join(' '));
    }
    const ledger = join(dir, 'from-env.sqlite');
    const set = runBulwark(['--json', 'query', 'budget', 'set', 'tx', '--epsilon', '1'], {
      env: { BULWARK_LEDGER: ledger },
      cwd: dir,
    });
    assert.equal(set.code, 0, set.stderr);
    const status = runBulwark(['--json', 'query', 'budget', 'status', 'tx', '--ledger', ledger]);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(JSON.parse(status.stdout).total.epsilon, 1);
  });

  it('train --help lists the options every run takes before the DP, audit and integrity ones', async () => {
    const r = await runBulwarkInProcess(['train', '--help']);
    assert.equal(r.code, 0, r.stderr);
    // An option's own line (a wrapped description line may begin with a flag too).
    const at = (flag: string) => r.stdout.search(new RegExp(`^  ${flag} `, 'm'));
    for (const flag of ['--data', '--label', '--out', '--dp-epsilon', '--audit', '--from'])
      assert.ok(at(flag) > 0, flag);
    // Before, the help opened with --dp-epsilon and listed --data and --label after 40 other options.
    assert.ok(at('--data') < at('--dp-epsilon'));
    assert.ok(at('--force') < at('--dp-epsilon'));
    assert.ok(at('--dp-epsilon') < at('--from'));
  });

  it('deploy k8s --out naming a file is a usage error naming --out', async () => {
    const file = join(dir, 'not-a-folder.yaml');
    writeFileSync(file, 'x: 1\n');
    const r = await runBulwarkInProcess(['deploy', 'k8s', '--config', file, '--out', file]);
    // Before: exit 1, "ERR_IO: cannot read output folder: ...: ENOTDIR".
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^bulwark: ERR_USAGE: --out .*not-a-folder\.yaml is a file; give a folder/);
  });

  it('predict, evaluate and data inspect given a protected package say so instead of "invalid wire type"', async () => {
    // Only the header matters here: a package starts with its magic, and its model is encrypted.
    const pkg = join(dir, 'fraud.bwm');
    writeFileSync(
      pkg,
      Buffer.concat([Buffer.from('BULWARKM\x01\x00\x00\x00', 'latin1'), Buffer.alloc(64, 7)]),
    );
    const data = join(dir, 'rows.csv');
    writeFileSync(data, 'a,label\n1,0\n2,1\n');
    for (const args of [
      ['predict', '--model', pkg, '--data', data],
      ['evaluate', '--model', pkg, '--data', data, '--label', 'label'],
      ['data', 'inspect', '--model', pkg, '--data', data],
    ]) {
      const r = await runBulwarkInProcess(args);
      assert.equal(r.code, 3, `${args[0]}: ${r.stderr}`);
      // Before: "ERR_ONNX_INVALID: not an ONNX model: invalid wire type 4 at offset 3".
      assert.match(
        r.stderr,
        /^bulwark: ERR_FORMAT_UNSUPPORTED: .*fraud\.bwm is a protected model package \(\.bwm\)/,
        args[0],
      );
    }
  });

  it('the arguments of the data, keys and model commands are described in their --help', async () => {
    const program = await buildProgram();
    const pathOf = (c: { name(): string; parent: unknown }): string => {
      const names: string[] = [];
      for (
        let cur = c as { name(): string; parent: unknown } | null;
        cur?.parent;
        cur = cur.parent as typeof cur
      )
        names.unshift(cur.name());
      return names.join(' ');
    };
    const checked = allCommands(program).filter((c) =>
      /^(data|keys|model|deploy|attest|audit|policy) /.test(pathOf(c)),
    );
    assert.ok(checked.length > 20);
    // Before, thirteen of them (data protect, keys create, model verify, ...) showed a bare <file> or <id>.
    for (const c of checked)
      for (const a of c.registeredArguments)
        assert.ok(a.description.length > 0, `bulwark ${pathOf(c)}: <${a.name()}> has no description`);
  });

  it('each query lists only the options it reads; a flag of another query is refused, not ignored', async () => {
    const query = (await buildProgram()).commands.find((c) => c.name() === 'query');
    assert.ok(query);
    const shown = (kind: string): string[] => {
      const c = query.commands.find((x) => x.name() === kind);
      assert.ok(c, kind);
      return c.options.filter((o) => !o.hidden).map((o) => o.long ?? '');
    };
    // Before, all five listed --bins, --categories, --quantiles, --candidates, --lower and --upper,
    // and `count --bins 3` ran a count, ignoring the flag.
    const only = ['--lower', '--upper', '--bins', '--categories', '--quantiles', '--candidates'];
    const expected: Record<string, string[]> = {
      count: [],
      sum: ['--lower', '--upper'],
      mean: ['--lower', '--upper'],
      histogram: ['--lower', '--upper', '--bins', '--categories'],
      quantiles: ['--lower', '--upper', '--quantiles', '--candidates'],
    };
    for (const [kind, flags] of Object.entries(expected)) {
      const s = shown(kind);
      assert.deepEqual(
        only.filter((f) => s.includes(f)),
        flags,
        kind,
      );
      for (const common of ['--data', '--epsilon', '--ledger', '--budget', '--audit'])
        assert.ok(s.includes(common), `${kind} ${common}`);
      // Quantiles are pure epsilon-DP: --delta and --mechanism are parsed only to refuse them with the reason.
      assert.equal(s.includes('--delta'), kind !== 'quantiles', kind);
    }
    const r = await runBulwarkInProcess([
      'query',
      'count',
      '--data',
      'x.csv',
      '--epsilon',
      '1',
      '--bins',
      '3',
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /ERR_USAGE: unknown option '--bins'/);
    const q = await runBulwarkInProcess([
      'query',
      'quantiles',
      '--data',
      'x.csv',
      '--epsilon',
      '1',
      '--delta',
      '0.1',
    ]);
    assert.equal(q.code, 2, q.stderr);
    assert.match(
      q.stderr,
      /ERR_USAGE: quantiles are pure epsilon-DP \(permute-and-flip\): no --mechanism or --delta/,
    );
  });

  it('train: --gate and --max-flagged outside a DP fine-tune are refused, not ignored', () => {
    const data = join(dir, 'gate.csv');
    writeFileSync(data, 'a,b,label\n1,2,yes\n3,4,no\n5,6,yes\n7,8,no\n');
    for (const extra of [
      ['--gate', 'both'],
      ['--max-flagged', '0.1'],
    ]) {
      const r = runBulwark([
        'train',
        '--data',
        data,
        '--label',
        'label',
        '--out',
        join(dir, 'g.onnx'),
        ...extra,
      ]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /ERR_USAGE: --gate and --max-flagged apply to a DP fine-tune/);
    }
  });

  it('serve --help says what --check does: a dry run that writes nothing and binds no port', async () => {
    const r = await runBulwarkInProcess(['serve', '--help']);
    assert.equal(r.code, 0, r.stderr);
    const text = r.stdout.replace(/\s+/g, ' ');
    // Before: a full start and stop that bound the ports (EADDRINUSE beside a running gateway) and
    // appended model.loaded events to the audit log (test/gateway/check.test.ts checks the behaviour).
    assert.match(text, /--check dry run: .*audit log read-only/);
    assert.match(text, /nothing is written and no port is bound/);
  });
});
