import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers/cli.js';

// A child that behaves like a command in the middle of a streamed write (a decryption, say): it
// starts an atomic output, writes part of it, says so, and waits for more input that never comes.
const CHILD = `
import { AtomicFileStream } from ${JSON.stringify(join(ROOT, 'src/core/index.ts'))};
import { exitCleanlyOnSignals } from ${JSON.stringify(join(ROOT, 'src/cli/signals.ts'))};
exitCleanlyOnSignals(process.argv.includes('--json'));
const out = await AtomicFileStream.create(process.argv[2]);
out.stream.write('4685849731297135,095-62-2718\\n');
await new Promise((r) => out.stream.once('drain', r).write('x'.repeat(1 << 20)) && r());
process.stdout.write('writing\\n');
setInterval(() => {}, 1000);
`;

async function interrupt(signal: 'SIGINT' | 'SIGTERM', json: boolean) {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-signal-'));
  const script = join(dir, 'child.mts');
  writeFileSync(script, CHILD);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', script, join(dir, 'plain.csv'), ...(json ? ['--json'] : [])],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  while (!stdout.includes('writing')) await once(child.stdout, 'data');
  // The unfinished output exists as a temporary file before the signal.
  assert.equal(readdirSync(dir).filter((f) => f.endsWith('.tmp')).length, 1);
  child.kill(signal);
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stderr, left: readdirSync(dir).sort() };
}

describe('a command stopped by a signal', () => {
  it('SIGINT: deletes the unfinished output, reports ERR_ABORTED, exit 1', async () => {
    const r = await interrupt('SIGINT', false);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^bulwark: ERR_ABORTED: interrupted by SIGINT; the unfinished output was deleted/m,
    );
    assert.deepEqual(r.left, ['child.mts']);
  });

  it('SIGTERM with --json: the error is JSON on stderr', async () => {
    const r = await interrupt('SIGTERM', true);
    assert.equal(r.code, 1);
    const e = JSON.parse(r.stderr.trim().split('\n').at(-1) as string) as { error: { code: string } };
    assert.equal(e.error.code, 'ERR_ABORTED');
    assert.deepEqual(r.left, ['child.mts']);
  });
});
