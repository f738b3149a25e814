import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { AuditLog } from '../../src/audit/index.js';
import { isBulwarkError } from '../../src/core/index.js';
import {
  auditSpendSink,
  type BudgetLedger,
  openLedger,
  parseLedgerLocation,
} from '../../src/privacy/index.js';
import { code } from '../helpers/errors.js';
import { ledgerScratch, PG_URL, pgReason } from './fixtures/ledger-stores.js';

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
const { tmp, newSchema } = ledgerScratch('bulwark-ledger-', 'ledger_test_');

function pgLocation(): string {
  return `${PG_URL}?schema=${newSchema()}`;
}

/** The same behaviour on both stores. */
function behaviour(name: string, open: () => Promise<BudgetLedger>, skip: string | null): void {
  describe(`budget ledger (${name})`, { skip: skip ?? false }, () => {
    it('refuses to spend without a budget (fail closed)', async () => {
      const l = await open();
      try {
        await assert.rejects(
          l.spend({ dataset: 'adult', epsilon: 0.1, operation: 'query.count' }),
          code('ERR_PRIVACY_BUDGET_UNSET'),
        );
        await assert.rejects(l.status('adult'), code('ERR_PRIVACY_BUDGET_UNSET'));
      } finally {
        await l.close();
      }
    });

    it('preview decides as spend would, records nothing; the ledger has a random id', async () => {
      const l = await open();
      try {
        assert.match(l.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        await assert.rejects(
          l.preview({ dataset: 'adult', epsilon: 0.1, operation: 'train.dp-sgd' }),
          code('ERR_PRIVACY_BUDGET_UNSET'),
        );
        await l.setBudget('adult', { epsilon: 1, delta: 1e-5 });
        await l.spend({ dataset: 'adult', epsilon: 0.25, operation: 'query.count' });
        const left = await l.preview({
          dataset: 'adult',
          epsilon: 0.5,
          delta: 1e-6,
          operation: 'train.dp-sgd',
        });
        assert.ok(Math.abs(left.epsilon - 0.25) < 1e-12 && Math.abs(left.delta - 9e-6) < 1e-18);
        await assert.rejects(
          l.preview({ dataset: 'adult', epsilon: 0.8, operation: 'train.dp-sgd' }),
          code('ERR_PRIVACY_BUDGET_EXCEEDED'),
        );
        const st = await l.status('adult');
        assert.equal(st.spends, 1);
        assert.equal(st.spent.epsilon, 0.25);
      } finally {
        await l.close();
      }
    });

    it('spends until the budget is used, then refuses with ERR_PRIVACY_BUDGET_EXCEEDED and spends nothing', async () => {
      const l = await open();
      try {
        await l.setBudget('adult', { epsilon: 1, delta: 1e-5 });
        for (let i = 0; i < 10; i++) {
          const r = await l.spend({
            dataset: 'adult',
            epsilon: 0.1,
            operation: 'query.count',
            details: { column: 'age' },
          });
          assert.ok(Math.abs(r.remaining.epsilon - (0.9 - 0.1 * i)) < 1e-9);
        }
        await assert.rejects(
          l.spend({ dataset: 'adult', epsilon: 0.1, operation: 'query.count' }),
          (e: unknown) => {
            assert.ok(isBulwarkError(e, 'ERR_PRIVACY_BUDGET_EXCEEDED'));
            assert.match(e.message, /would exceed the budget/);
            assert.equal(e.exitCode, 5);
            return true;
          },
        );
        // delta is a separate budget: epsilon 0 but too much delta is refused too.
        await l.setBudget('adult', { epsilon: 5, delta: 1e-5 });
        await assert.rejects(
          l.spend({ dataset: 'adult', epsilon: 0.1, delta: 2e-5, operation: 'train' }),
          code('ERR_PRIVACY_BUDGET_EXCEEDED'),
        );
        const st = await l.status('adult');
        assert.equal(st.spends, 10);
        assert.ok(Math.abs(st.spent.epsilon - 1) < 1e-12);
        assert.equal(st.total.epsilon, 5);
        const h = await l.history('adult');
        assert.equal(h.length, 10);
        assert.deepEqual(h[0]?.details, { column: 'age' });
        assert.equal(h[0]?.analyst, null);
      } finally {
        await l.close();
      }
    });

    it('per-analyst budgets: each analyst within both their own and the dataset total; unknown analysts refused', async () => {
      const l = await open();
      try {
        await l.setBudget('claims', { epsilon: 2, delta: 1e-5 });
        await l.setBudget('claims', { epsilon: 1.5, delta: 1e-5 }, { analyst: 'ana' });
        await l.setBudget('claims', { epsilon: 1.5, delta: 1e-5 }, { analyst: 'bo' });
        await l.spend({ dataset: 'claims', analyst: 'ana', epsilon: 1.2, operation: 'q' });
        await assert.rejects(
          l.spend({ dataset: 'claims', analyst: 'ana', epsilon: 0.5, operation: 'q' }),
          code('ERR_PRIVACY_BUDGET_EXCEEDED'),
        );
        // bo has 1.5 of their own but only 0.8 of the dataset is left.
        await assert.rejects(
          l.spend({ dataset: 'claims', analyst: 'bo', epsilon: 1, operation: 'q' }),
          code('ERR_PRIVACY_BUDGET_EXCEEDED'),
        );
        await l.spend({ dataset: 'claims', analyst: 'bo', epsilon: 0.8, operation: 'q' });
        await assert.rejects(
          l.spend({ dataset: 'claims', analyst: 'cy', epsilon: 0.01, operation: 'q' }),
          code('ERR_PRIVACY_BUDGET_UNSET'),
        );
        await assert.rejects(
          l.spend({ dataset: 'claims', epsilon: 0.01, operation: 'q' }),
          code('ERR_PRIVACY_BUDGET_UNSET'),
        );
        assert.ok(Math.abs((await l.status('claims', { analyst: 'ana' })).spent.epsilon - 1.2) < 1e-12);
        assert.ok(Math.abs((await l.status('claims')).remaining.epsilon) < 1e-12);
      } finally {
        await l.close();
      }
    });

    it('validates spend requests naming the field', async () => {
      const l = await open();
      try {
        await assert.rejects(l.spend({ dataset: '', epsilon: 1, operation: 'q' }), /dataset:/);
        await assert.rejects(l.spend({ dataset: 'a', epsilon: -1, operation: 'q' }), /epsilon:/);
        await assert.rejects(l.spend({ dataset: 'a', epsilon: 1, delta: 1, operation: 'q' }), /delta:/);
        await assert.rejects(l.setBudget('a', { epsilon: Number.NaN, delta: 0 }), /budget.epsilon:/);
      } finally {
        await l.close();
      }
    });
  });
}

behaviour('SQLite', () => openLedger(join(tmp, `l-${randomBytes(4).toString('hex')}.sqlite`)), null);
behaviour('PostgreSQL', () => openLedger(pgLocation()), pgReason);

/** Runs `procs` spender processes at once, each trying `attempts` spends of `eps`. */
async function concurrentSpenders(location: string, procs: number, attempts: number, eps: number) {
  const script = join(HERE, 'fixtures', 'spender.ts');
  const outs = await Promise.all(
    Array.from({ length: procs }, () =>
      run(process.execPath, ['--import', 'tsx', script, location, 'shared', String(eps), String(attempts)], {
        timeout: 120_000,
      }),
    ),
  );
  return outs.map((o) => JSON.parse(o.stdout) as { committed: number; refused: number; ids: string[] });
}

describe('a ledger keeps its id across opens', () => {
  it('SQLite: the same file, the same id; another file, another id', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-ledger-id-'));
    try {
      const ids: string[] = [];
      for (const f of ['a.sqlite', 'a.sqlite', 'b.sqlite']) {
        const l = await openLedger(join(dir, f));
        ids.push(l.id);
        await l.close();
      }
      assert.equal(ids[0], ids[1]);
      assert.notEqual(ids[0], ids[2]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('PostgreSQL: the same schema, the same id', { skip: pgReason ?? false }, async () => {
    const loc = pgLocation();
    const a = await openLedger(loc);
    const b = await openLedger(loc);
    try {
      assert.equal(a.id, b.id);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('concurrent spenders never exceed the budget', () => {
  it('PostgreSQL: 4 processes x 8 attempts of 0.1 against a budget of 1.0 commit exactly 10', {
    skip: pgReason ?? false,
  }, async () => {
    const location = pgLocation();
    const l = await openLedger(location);
    await l.setBudget('shared', { epsilon: 1, delta: 1e-5 });
    try {
      const res = await concurrentSpenders(location, 4, 8, 0.1);
      const committed = res.reduce((s, r) => s + r.committed, 0);
      assert.equal(committed, 10, JSON.stringify(res.map((r) => [r.committed, r.refused])));
      assert.equal(
        res.reduce((s, r) => s + r.refused, 0),
        22,
      );
      const st = await l.status('shared');
      assert.equal(st.spends, 10);
      assert.ok(st.spent.epsilon <= 1 + 1e-9, String(st.spent.epsilon));
      // The recorded spends are exactly the committed ones, and they sum to the stored total.
      const h = await l.history('shared');
      assert.deepEqual(new Set(h.map((r) => r.id)), new Set(res.flatMap((r) => r.ids)));
      assert.ok(Math.abs(h.reduce((s, r) => s + r.epsilon, 0) - st.spent.epsilon) < 1e-12);
      // More than one process got some: they really ran concurrently against one ledger.
      assert.ok(res.filter((r) => r.committed > 0).length >= 1);
    } finally {
      await l.close();
    }
  });

  it('SQLite: 3 processes on one file commit exactly 10 of 0.1 against 1.0', async () => {
    const location = join(tmp, 'shared.sqlite');
    const l = await openLedger(location);
    await l.setBudget('shared', { epsilon: 1, delta: 1e-5 });
    try {
      const res = await concurrentSpenders(location, 3, 6, 0.1);
      assert.equal(
        res.reduce((s, r) => s + r.committed, 0),
        10,
      );
      assert.equal((await l.status('shared')).spends, 10);
    } finally {
      await l.close();
    }
  });
});

describe('an unreachable ledger refuses (fail closed)', () => {
  it('PostgreSQL that is not listening: ERR_LEDGER_UNAVAILABLE, exit status 6', async () => {
    await assert.rejects(
      openLedger({ kind: 'postgres', url: 'postgres://postgres@127.0.0.1:1/test', connectTimeoutMs: 2000 }),
      (e: unknown) => {
        assert.ok(isBulwarkError(e, 'ERR_LEDGER_UNAVAILABLE'), String(e));
        assert.equal(e.exitCode, 6);
        assert.doesNotMatch(e.message, /password/);
        return true;
      },
    );
  });

  it('a new SQLite ledger in a missing folder: ERR_FILE_NOT_FOUND naming the folder, nothing created', async () => {
    const missing = join(tmp, 'bulwrak', 'deeper');
    const path = join(missing, 'ledger.sqlite');
    for (const open of [() => openLedger(path), () => openLedger(`sqlite:${path}`)]) {
      await assert.rejects(open(), {
        code: 'ERR_FILE_NOT_FOUND',
        message: `cannot write budget ledger ${path}: no such folder: ${missing} (create it first)`,
      });
    }
    // With the option the location came from named.
    await assert.rejects(openLedger(path, { option: '--ledger' }), {
      code: 'ERR_FILE_NOT_FOUND',
      message: `cannot write budget ledger ${path} (--ledger): no such folder: ${missing} (create it first)`,
    });
    assert.equal(existsSync(join(tmp, 'bulwrak')), false);
  });

  it('an existing SQLite ledger opens again with its budget and spends', async () => {
    const path = join(tmp, `reopen-${randomBytes(4).toString('hex')}.sqlite`);
    const first = await openLedger(path);
    await first.setBudget('ds', { epsilon: 1, delta: 0 });
    await first.spend({ dataset: 'ds', epsilon: 0.25, operation: 'test.reopen' });
    await first.close();
    const again = await openLedger(path, { option: '--ledger' });
    try {
      assert.equal(again.id, first.id);
      assert.equal((await again.status('ds')).spent.epsilon, 0.25);
    } finally {
      await again.close();
    }
  });

  it("a file where the SQLite ledger's folder should be: ERR_IO (a file is in the way)", async () => {
    const file = join(tmp, 'a-file');
    writeFileSync(file, '');
    for (const path of [join(file, 'ledger.sqlite'), join(file, 'sub', 'ledger.sqlite')]) {
      await assert.rejects(openLedger(path), {
        code: 'ERR_IO',
        message: /^cannot write budget ledger .*: .*a-file(\/sub)? is not a folder \(a file is in the way\)$/,
      });
    }
  });

  it('a file that is not a ledger: ERR_LEDGER_INVALID', async () => {
    const path = join(tmp, 'not-a-db.sqlite');
    (await import('node:fs')).writeFileSync(path, 'this is not sqlite'.repeat(100));
    await assert.rejects(openLedger(path), code('ERR_LEDGER_INVALID'));
  });

  it('parses ledger locations', () => {
    assert.deepEqual(parseLedgerLocation('postgres://u@h:5432/db?schema=x'), {
      kind: 'postgres',
      url: 'postgres://u@h:5432/db',
      schema: 'x',
    });
    assert.deepEqual(parseLedgerLocation('sqlite:/tmp/l.db'), { kind: 'sqlite', path: '/tmp/l.db' });
    assert.deepEqual(parseLedgerLocation('ledger.sqlite'), { kind: 'sqlite', path: 'ledger.sqlite' });
  });
});

describe('spends are audit events', () => {
  it('each committed spend is appended to the audit log; a refused one is not', async () => {
    const log = await AuditLog.open({
      store: { kind: 'sqlite', path: join(tmp, 'audit.sqlite') },
      origin: 'bulwark.test/ledger',
    });
    const l = await openLedger(join(tmp, 'audited.sqlite'), { onSpend: auditSpendSink(log) });
    try {
      await l.setBudget('adult', { epsilon: 1, delta: 0 });
      const r = await l.spend({
        dataset: 'adult',
        epsilon: 0.6,
        operation: 'query.mean',
        details: { column: 'age' },
      });
      await assert.rejects(
        l.spend({ dataset: 'adult', epsilon: 0.6, operation: 'query.mean' }),
        code('ERR_PRIVACY_BUDGET_EXCEEDED'),
      );
      const tail = await log.tail(10);
      assert.equal(tail.length, 1);
      const ev = tail[0]!;
      assert.equal(ev.type, 'privacy.spent');
      const data = ev.data as {
        spendId: string;
        dataset: string;
        epsilon: number;
        details: Record<string, unknown>;
      };
      assert.equal(data.spendId, r.id);
      assert.equal(data.dataset, 'adult');
      assert.equal(data.epsilon, 0.6);
      assert.equal(data.details['column'], 'age');
    } finally {
      await l.close();
      await log.close();
    }
  });
});
