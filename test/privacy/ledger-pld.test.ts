/**
 * Budgets with `composition: 'pld'`: the ledger composes the accounting events of every spend with the
 * PLD accountant (docs/privacy.md, "Composition across spends"), on SQLite and PostgreSQL; old ledgers
 * open as basic; damaged records refuse; concurrent spenders never exceed a pld budget.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import pg from 'pg';
import { isBulwarkError } from '../../src/core/index.js';
import { mlp } from '../../src/ml/index.js';
import {
  type BudgetLedger,
  type ComposedEvent,
  composeSpends,
  createAccountant,
  dpCount,
  dpMean,
  dpQuantiles,
  fitDpLogisticRegression,
  NoiseSource,
  openLedger,
  type PrivacyEvent,
  trainDpSgd,
} from '../../src/privacy/index.js';
import { runBulwark } from '../helpers/cli.js';
import { code } from '../helpers/errors.js';
import { ledgerScratch, PG_URL, pgReason } from './fixtures/ledger-stores.js';

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
const { tmp, newSchema } = ledgerScratch('bulwark-ledger-pld-', 'ledger_pld_');

/** Runs SQL directly against a ledger's store (to damage it, or to build an old-format one). */
type RawSql = (sql: string, params?: unknown[]) => Promise<void>;

interface Store {
  open(): Promise<{ ledger: BudgetLedger; sql: RawSql; location: string }>;
}

const sqliteStore: Store = {
  async open() {
    const location = join(tmp, `l-${randomBytes(4).toString('hex')}.sqlite`);
    const ledger = await openLedger(location);
    const sql: RawSql = async (text, params = []) => {
      const db = new Database(location);
      try {
        db.prepare(text).run(...params);
      } finally {
        db.close();
      }
    };
    return { ledger, sql, location };
  },
};

const pgStore: Store = {
  async open() {
    const schema = newSchema();
    const location = `${PG_URL}?schema=${schema}`;
    const ledger = await openLedger(location);
    const sql: RawSql = async (text, params = []) => {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      try {
        await c.query(`SET search_path TO "${schema}"`);
        await c.query(
          text.replace(/\?/g, (_m, i: number) => `$${text.slice(0, i).split('?').length}`),
          params,
        );
      } finally {
        await c.end();
      }
    };
    return { ledger, sql, location };
  },
};

// One DP-SGD run: 100 Poisson-subsampled Gaussian steps (σ 1.1, q 0.01), stated at δ 1e-6 by the PLD
// accountant, as trainDpSgd would spend it.
const STEP: PrivacyEvent = { kind: 'gaussian', noiseMultiplier: 1.1, samplingRate: 0.01 };
const STEPS = 100;
const RUN_DELTA = 1e-6;
const RUN_EPS = createAccountant('pld').compose(STEP, STEPS).getEpsilon(RUN_DELTA);
const RUN_EVENTS: ComposedEvent[] = [{ event: STEP, count: STEPS }];
const BUDGET_DELTA = 1e-5;
/**
 * The PLD accountant's ε for k runs composed in one process, at the budget's δ. Kept per k: each is a
 * fresh accountant (about 0.25 s), and the tests ask for the same few k some thirty times.
 */
const inProcessEps = new Map<number, number>();
const inProcess = (k: number): number => {
  let eps = inProcessEps.get(k);
  if (eps === undefined) {
    eps = createAccountant('pld')
      .compose(STEP, STEPS * k)
      .getEpsilon(BUDGET_DELTA);
    inProcessEps.set(k, eps);
  }
  return eps;
};
/** Agreement asked of the ledger's composition and the one-process accountant (the same computation). */
const TOLERANCE = 1e-9;
const close = (a: number, b: number) => Math.abs(a - b) <= TOLERANCE * Math.max(1, Math.abs(b));

const dpSgdSpend = (dataset: string) => ({
  dataset,
  epsilon: RUN_EPS,
  delta: RUN_DELTA,
  operation: 'train.dp-sgd',
  events: RUN_EVENTS,
});

function behaviour(name: string, store: Store, skip: string | null): void {
  describe(`pld budgets (${name})`, { skip: skip ?? false }, () => {
    it('k identical DP-SGD spends compose to the PLD accountant of the same events in one process, below the basic sum', async () => {
      const { ledger } = await store.open();
      try {
        await ledger.setBudget('health', { epsilon: 10, delta: BUDGET_DELTA }, { composition: 'pld' });
        for (let k = 1; k <= 4; k++) {
          const preview = await ledger.preview(dpSgdSpend('health'));
          const r = await ledger.spend(dpSgdSpend('health'));
          assert.equal(r.composition, 'pld');
          assert.deepEqual(r.events, RUN_EVENTS);
          assert.ok(close(r.spent.epsilon, inProcess(k)), `${k}: ${r.spent.epsilon} vs ${inProcess(k)}`);
          // preview gave what the spend then did.
          assert.equal(preview.epsilon, r.remaining.epsilon);
          assert.equal(preview.delta, r.remaining.delta);
          assert.ok(close(r.remaining.epsilon, 10 - inProcess(k)));
        }
        const st = await ledger.status('health');
        assert.equal(st.composition, 'pld');
        assert.equal(st.spends, 4);
        assert.equal(st.accounting.figure, 'pld');
        assert.ok(close(st.spent.epsilon, inProcess(4)));
        assert.ok(close(st.accounting.basic.epsilon, 4 * RUN_EPS));
        assert.ok(st.spent.epsilon < st.accounting.basic.epsilon / 2, JSON.stringify(st));
        // δ still adds up (the conservative choice).
        assert.ok(Math.abs(st.spent.delta - 4 * RUN_DELTA) < 1e-18);
        assert.deepEqual(
          (await ledger.history('health')).map((h) => h.events),
          [RUN_EVENTS, RUN_EVENTS, RUN_EVENTS, RUN_EVENTS],
        );
      } finally {
        await ledger.close();
      }
    });

    it('a budget basic composition refuses and pld admits; pld still refuses past its epsilon', async () => {
      const { ledger } = await store.open();
      try {
        // Basic: three runs cost 3·RUN_EPS; the PLD figure for three runs is under half of it.
        const total = (inProcess(3) + 3 * RUN_EPS) / 2;
        assert.ok(2 * RUN_EPS < total && inProcess(3) < total);
        await ledger.setBudget('basic', { epsilon: total, delta: BUDGET_DELTA });
        await ledger.setBudget('pld', { epsilon: total, delta: BUDGET_DELTA }, { composition: 'pld' });
        for (let k = 0; k < 2; k++) {
          await ledger.spend(dpSgdSpend('basic'));
          await ledger.spend(dpSgdSpend('pld'));
        }
        await assert.rejects(ledger.preview(dpSgdSpend('basic')), code('ERR_PRIVACY_BUDGET_EXCEEDED'));
        await assert.rejects(ledger.spend(dpSgdSpend('basic')), code('ERR_PRIVACY_BUDGET_EXCEEDED'));
        await ledger.spend(dpSgdSpend('pld'));
        assert.equal((await ledger.status('basic')).spends, 2);
        assert.equal((await ledger.status('pld')).spends, 3);

        // The reverse: a pld budget between the PLD figures of four and five runs admits four, refuses
        // the fifth (preview and spend alike), and records nothing for it.
        const tight = (inProcess(4) + inProcess(5)) / 2;
        await ledger.setBudget('tight', { epsilon: tight, delta: BUDGET_DELTA }, { composition: 'pld' });
        for (let k = 0; k < 4; k++) await ledger.spend(dpSgdSpend('tight'));
        const refused = (e: unknown) => {
          assert.ok(isBulwarkError(e, 'ERR_PRIVACY_BUDGET_EXCEEDED'), String(e));
          assert.match(e.message, /pld composition: the composed epsilon would be /);
          assert.equal(e.details['composition'], 'pld');
          assert.ok(close(Number(e.details['epsilonLeft']), tight - inProcess(4)));
          return true;
        };
        await assert.rejects(ledger.preview(dpSgdSpend('tight')), refused);
        await assert.rejects(ledger.spend(dpSgdSpend('tight')), refused);
        const st = await ledger.status('tight');
        assert.equal(st.spends, 4);
        assert.ok(close(st.spent.epsilon, inProcess(4)));
      } finally {
        await ledger.close();
      }
    });

    it('the composed figure never exceeds the basic sum (min of both)', async () => {
      const { ledger } = await store.open();
      try {
        // One pure spend whose ε is off the PLD grid: the pessimistic grid rounds the PLD figure up
        // above the basic sum, and the basic sum is what is charged — so it fits a budget of exactly it.
        await ledger.setBudget('q', { epsilon: 0.12345, delta: 1e-12 }, { composition: 'pld' });
        const pure: ComposedEvent[] = [{ event: { kind: 'pure', epsilon: 0.12345 }, count: 1 }];
        const r = await ledger.spend({
          dataset: 'q',
          epsilon: 0.12345,
          operation: 'query.count',
          events: pure,
        });
        assert.equal(r.spent.epsilon, 0.12345);
        const st = await ledger.status('q');
        assert.equal(st.accounting.figure, 'basic');
        assert.ok((st.accounting.pldEpsilon ?? 0) > 0.12345, String(st.accounting.pldEpsilon));
        assert.equal(st.spent.epsilon, 0.12345);
      } finally {
        await ledger.close();
      }
    });

    it('a spend without events, or with events the PLD accountant cannot analyse, counts as its own (epsilon, delta)', async () => {
      const { ledger } = await store.open();
      try {
        await ledger.setBudget('a', { epsilon: 5, delta: 1e-4 }, { composition: 'pld' });
        await ledger.setBudget('b', { epsilon: 5, delta: 1e-4 }, { composition: 'pld' });
        await ledger.spend({ dataset: 'a', epsilon: 0.5, delta: 1e-6, operation: 'opaque' });
        // zCDP is not a PLD event: the whole spend falls back to its (ε, δ).
        await ledger.spend({
          dataset: 'b',
          epsilon: 0.5,
          delta: 1e-6,
          operation: 'query.count',
          events: [{ event: { kind: 'zcdp', rho: 0.01 }, count: 1 }],
        });
        const blackBox = createAccountant('pld')
          .compose({ kind: 'approx', epsilon: 0.5, delta: 1e-6 })
          .getEpsilon(1e-4);
        for (const ds of ['a', 'b']) {
          const st = await ledger.status(ds);
          // min(basic 0.5, the black box's PLD at the budget's δ).
          assert.ok(close(st.spent.epsilon, Math.min(0.5, blackBox)), `${ds}: ${JSON.stringify(st)}`);
          assert.ok(st.spent.epsilon > 0.4, 'counted, not dropped');
        }
      } finally {
        await ledger.close();
      }
    });

    it('fails closed: an unknown event kind is refused naming it; damaged stored events or composition refuse with ERR_LEDGER_INVALID', async () => {
      const { ledger, sql } = await store.open();
      try {
        await ledger.setBudget('d', { epsilon: 5, delta: 1e-5 }, { composition: 'pld' });
        await assert.rejects(
          ledger.spend({
            dataset: 'd',
            epsilon: 0.1,
            operation: 'q',
            events: [{ event: { kind: 'laplace', epsilon: 0.1 } as unknown as PrivacyEvent, count: 1 }],
          }),
          (e: unknown) => {
            assert.ok(isBulwarkError(e, 'ERR_INVALID_ARGUMENT'), String(e));
            assert.match(e.message, /^events\[0\]\.event\.kind: expected gaussian, pure, approx or zcdp/);
            return true;
          },
        );
        await assert.rejects(
          ledger.spend({ dataset: 'd', epsilon: 0.1, operation: 'q', events: [{ event: STEP, count: 0 }] }),
          /events\[0\]\.count: /,
        );
        assert.equal((await ledger.status('d')).spends, 0);

        const first = await ledger.spend({
          dataset: 'd',
          epsilon: 0.1,
          operation: 'q',
          events: [{ event: { kind: 'pure', epsilon: 0.1 }, count: 1 }],
        });
        const next = {
          dataset: 'd',
          epsilon: 0.1,
          operation: 'q',
          events: [{ event: { kind: 'pure' as const, epsilon: 0.1 }, count: 1 }],
        };
        const invalid = (e: unknown) => {
          assert.ok(isBulwarkError(e, 'ERR_LEDGER_INVALID'), String(e));
          assert.equal(e.exitCode, 3);
          return true;
        };
        for (const damaged of [
          '[{"event":{"kind":"pure","epsilon":0.1},"count":1',
          '[{"event":{"kind":"foo","epsilon":0.1},"count":1}]',
          '[{"event":{"kind":"pure","epsilon":-1},"count":1}]',
          '{"event":{"kind":"pure","epsilon":0.1},"count":1}',
        ]) {
          await sql('UPDATE ledger_spends SET events = ? WHERE id = ?', [damaged, first.id]);
          await assert.rejects(ledger.spend(next), invalid);
          await assert.rejects(ledger.preview(next), invalid);
          await assert.rejects(ledger.status('d'), invalid);
        }
        await sql('UPDATE ledger_spends SET events = NULL WHERE id = ?', [first.id]);
        await ledger.spend(next);
        // A composition this version does not know is not read as basic.
        await sql("UPDATE ledger_budgets SET composition = 'advanced' WHERE dataset = ?", ['d']);
        await assert.rejects(ledger.spend(next), invalid);
        await assert.rejects(ledger.status('d'), invalid);
        assert.equal((await ledger.history('d')).length, 2);
      } finally {
        await ledger.close();
      }
    });

    it('composition: validated naming it; kept when a budget is set again without it; switchable', async () => {
      const { ledger } = await store.open();
      try {
        await assert.rejects(
          ledger.setBudget('c', { epsilon: 1, delta: 1e-5 }, { composition: 'rdp' as 'pld' }),
          (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^composition: /.test(e.message),
        );
        await assert.rejects(ledger.status('c'), code('ERR_PRIVACY_BUDGET_UNSET'));
        assert.equal((await ledger.setBudget('c', { epsilon: 1, delta: 1e-5 })).composition, 'basic');
        assert.equal(
          (await ledger.setBudget('c', { epsilon: 1, delta: 1e-5 }, { composition: 'pld' })).composition,
          'pld',
        );
        assert.equal((await ledger.setBudget('c', { epsilon: 2, delta: 1e-5 })).composition, 'pld');
        assert.equal(
          (await ledger.setBudget('c', { epsilon: 2, delta: 1e-5 }, { composition: 'basic' })).composition,
          'basic',
        );
      } finally {
        await ledger.close();
      }
    });

    it("per-analyst pld budgets compose the analyst's spends; the dataset's composes all", async () => {
      const { ledger } = await store.open();
      try {
        await ledger.setBudget('claims', { epsilon: 10, delta: BUDGET_DELTA }, { composition: 'pld' });
        await ledger.setBudget(
          'claims',
          { epsilon: 10, delta: BUDGET_DELTA },
          { analyst: 'ana', composition: 'pld' },
        );
        await ledger.setBudget('claims', { epsilon: 10, delta: BUDGET_DELTA }, { analyst: 'bo' });
        await ledger.spend({ ...dpSgdSpend('claims'), analyst: 'ana' });
        await ledger.spend({ ...dpSgdSpend('claims'), analyst: 'ana' });
        await ledger.spend({ ...dpSgdSpend('claims'), analyst: 'bo' });
        const ana = await ledger.status('claims', { analyst: 'ana' });
        const bo = await ledger.status('claims', { analyst: 'bo' });
        const all = await ledger.status('claims');
        assert.ok(close(ana.spent.epsilon, inProcess(2)));
        assert.equal(bo.composition, 'basic');
        assert.equal(bo.spent.epsilon, RUN_EPS);
        assert.ok(close(all.spent.epsilon, inProcess(3)));
      } finally {
        await ledger.close();
      }
    });
  });
}

behaviour('SQLite', sqliteStore, null);
behaviour('PostgreSQL', pgStore, pgReason);

describe('DP operations record the events their analysis composed', () => {
  it('DP-SGD, objective perturbation and the queries', async () => {
    const ledger = await openLedger(join(tmp, `ops-${randomBytes(4).toString('hex')}.sqlite`));
    const noise = (seed: number) => NoiseSource.insecureSeeded(seed, 'test');
    try {
      await ledger.setBudget('ops', { epsilon: 100, delta: 1e-3 }, { composition: 'pld' });
      const budget = { ledger, dataset: 'ops' };
      const n = 200;
      const x = Float32Array.from({ length: n * 3 }, (_, i) => Math.sin(i * 0.37));
      const y = Int32Array.from({ length: n }, (_, i) => i % 3);
      const net = mlp({ inputs: 3, hidden: [4], classes: 3, rng: 1 });
      const sgd = await trainDpSgd(
        net,
        { x, y, rows: n },
        {
          noiseMultiplier: 1.3,
          delta: 1e-5,
          expectedBatchSize: 20,
          epochs: 1,
          budget,
          noise: noise(1),
        },
      );
      assert.deepEqual(sgd.receipt?.events, [{ event: sgd.event, count: sgd.steps }]);
      const lr = await fitDpLogisticRegression(
        { x, y, rows: n },
        { epsilon: 3, dataNorm: 2, classes: 3, budget, noise: noise(2) },
      );
      assert.deepEqual(lr.receipt?.events, [{ event: { kind: 'pure', epsilon: 1 }, count: 3 }]);
      const values = Array.from({ length: n }, (_, i) => i % 10);
      const count = await dpCount(values, {
        epsilon: 0.5,
        mechanism: 'gaussian',
        delta: 1e-6,
        budget,
        noise: noise(3),
      });
      assert.deepEqual(count.receipt?.events, [
        { event: { kind: 'approx', epsilon: 0.5, delta: 1e-6 }, count: 1 },
      ]);
      const mean = await dpMean(values, { epsilon: 1, lower: 0, upper: 10, budget, noise: noise(4) });
      assert.deepEqual(mean.receipt?.events, [{ event: { kind: 'pure', epsilon: 0.5 }, count: 2 }]);
      const qs = await dpQuantiles(values, {
        epsilon: 1,
        lower: 0,
        upper: 10,
        quantiles: [0.25, 0.75],
        budget,
        noise: noise(5),
      });
      assert.deepEqual(qs.receipt?.events, [{ event: { kind: 'pure', epsilon: 0.5 }, count: 2 }]);
      // All of them compose, below their basic sum.
      const st = await ledger.status('ops');
      assert.equal(st.spends, 5);
      assert.ok(st.spent.epsilon < st.accounting.basic.epsilon, JSON.stringify(st.accounting));
    } finally {
      await ledger.close();
    }
  });
});

describe('composeSpends', () => {
  it('is never above the basic sum, and is the basic sum for basic budgets and at delta 0', () => {
    const spends = Array.from({ length: 12 }, (_, i) => ({
      epsilon: 0.05 + 0.01 * i,
      delta: i % 3 === 0 ? 1e-7 : 0,
      events:
        i % 4 === 0
          ? null
          : i % 3 === 0
            ? [{ event: { kind: 'approx' as const, epsilon: 0.05 + 0.01 * i, delta: 1e-7 }, count: 1 }]
            : [{ event: { kind: 'pure' as const, epsilon: 0.05 + 0.01 * i }, count: 1 }],
    }));
    const basicSum = spends.reduce((s, x) => s + x.epsilon, 0);
    for (const delta of [1e-12, 1e-9, 1e-6, 1e-3]) {
      const c = composeSpends(spends, 'pld', delta);
      assert.ok(c.epsilon <= c.basic.epsilon, `${delta}: ${JSON.stringify(c)}`);
      assert.equal(c.epsilon, Math.min(c.basic.epsilon, c.pldEpsilon ?? Infinity));
    }
    assert.equal(composeSpends(spends, 'basic', 1e-6).epsilon, basicSum);
    assert.equal(composeSpends(spends, 'pld', 0).epsilon, basicSum);
    assert.equal(composeSpends(spends, 'pld', 0).pldEpsilon, null);
  });
});

/**
 * Old ledgers: the first format, without `composition` or `events`, as the previous version created it
 * (src/privacy/ledger/sqlite.ts and postgres.ts before composition existed).
 */
const V1_SQLITE = `
CREATE TABLE ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE ledger_budgets (dataset TEXT NOT NULL, analyst TEXT NOT NULL,
  epsilon_total REAL NOT NULL, delta_total REAL NOT NULL, epsilon_spent REAL NOT NULL DEFAULT 0,
  delta_spent REAL NOT NULL DEFAULT 0, PRIMARY KEY (dataset, analyst)) WITHOUT ROWID;
CREATE TABLE ledger_spends (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
  dataset TEXT NOT NULL, analyst TEXT NOT NULL, epsilon REAL NOT NULL, delta REAL NOT NULL,
  operation TEXT NOT NULL, details TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX ledger_spends_dataset ON ledger_spends (dataset, analyst, seq);
`;
const V1_PG = [
  'CREATE TABLE ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)',
  `CREATE TABLE ledger_budgets (dataset TEXT NOT NULL, analyst TEXT NOT NULL,
    epsilon_total DOUBLE PRECISION NOT NULL, delta_total DOUBLE PRECISION NOT NULL,
    epsilon_spent DOUBLE PRECISION NOT NULL DEFAULT 0, delta_spent DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (dataset, analyst))`,
  `CREATE TABLE ledger_spends (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE,
    dataset TEXT NOT NULL, analyst TEXT NOT NULL, epsilon DOUBLE PRECISION NOT NULL,
    delta DOUBLE PRECISION NOT NULL, operation TEXT NOT NULL, details TEXT NOT NULL, at TEXT NOT NULL)`,
  'CREATE INDEX ledger_spends_dataset ON ledger_spends (dataset, analyst, seq)',
];
const V1_ROWS: string[] = [
  "INSERT INTO ledger_meta (key, value) VALUES ('format', 'bulwark.privacy-ledger')",
  "INSERT INTO ledger_meta (key, value) VALUES ('version', '1')",
  "INSERT INTO ledger_meta (key, value) VALUES ('id', '0f0e0d0c-0b0a-4908-8706-050403020100')",
  "INSERT INTO ledger_budgets (dataset, analyst, epsilon_total, delta_total, epsilon_spent, delta_spent) VALUES ('old', '', 1, 1e-5, 0.75, 2e-6)",
  `INSERT INTO ledger_spends (id, dataset, analyst, epsilon, delta, operation, details, at) VALUES ('s1', 'old', '', 0.5, 1e-6, 'train.dp-sgd', '{"accountant":"rdp"}', '2024-01-01T00:00:00.000Z')`,
  "INSERT INTO ledger_spends (id, dataset, analyst, epsilon, delta, operation, details, at) VALUES ('s2', 'old', '', 0.25, 1e-6, 'query.count', '{}', '2024-01-02T00:00:00.000Z')",
];

async function checkOldLedger(location: string): Promise<void> {
  const l = await openLedger(location);
  try {
    assert.equal(l.id, '0f0e0d0c-0b0a-4908-8706-050403020100');
    const st = await l.status('old');
    assert.equal(st.composition, 'basic');
    assert.equal(st.spent.epsilon, 0.75);
    assert.equal(st.spends, 2);
    const h = await l.history('old');
    assert.deepEqual(
      h.map((r) => [r.id, r.epsilon, r.events]),
      [
        ['s1', 0.5, null],
        ['s2', 0.25, null],
      ],
    );
    // Behaves as basic: 0.25 fits, then nothing does.
    await l.spend({ dataset: 'old', epsilon: 0.25, operation: 'q' });
    await assert.rejects(
      l.spend({ dataset: 'old', epsilon: 0.01, operation: 'q' }),
      code('ERR_PRIVACY_BUDGET_EXCEEDED'),
    );
    // Switched to pld, its old spends (no events) count as their own (ε, δ): still never more than the sum.
    const st2 = await l.setBudget('old', { epsilon: 1, delta: 1e-5 }, { composition: 'pld' });
    assert.equal(st2.composition, 'pld');
    assert.ok(st2.spent.epsilon <= 1 && st2.spent.epsilon > 0.9, JSON.stringify(st2));
  } finally {
    await l.close();
  }
  // And it opens again (the added columns are there now).
  const again = await openLedger(location);
  try {
    assert.equal((await again.status('old')).composition, 'pld');
  } finally {
    await again.close();
  }
}

describe('ledgers of the first format open unchanged and behave as basic', () => {
  it('SQLite', async () => {
    const path = join(tmp, `v1-${randomBytes(4).toString('hex')}.sqlite`);
    const db = new Database(path);
    db.exec(V1_SQLITE);
    for (const q of V1_ROWS) db.exec(q);
    db.close();
    await checkOldLedger(path);
  });

  it('PostgreSQL', { skip: pgReason ?? false }, async () => {
    const schema = newSchema();
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      await c.query(`CREATE SCHEMA "${schema}"`);
      await c.query(`SET search_path TO "${schema}"`);
      for (const t of V1_PG) await c.query(t);
      for (const q of V1_ROWS) await c.query(q);
    } finally {
      await c.end();
    }
    await checkOldLedger(`${PG_URL}?schema=${schema}`);
  });
});

describe('concurrent spenders never exceed a pld budget', () => {
  // Pure-ε spends of 0.1 against ε 1.5: basic composition admits 15, the PLD figure more. How many
  // is found by spending one at a time in this process; concurrent processes must commit exactly that.
  const PURE: ComposedEvent[] = [{ event: { kind: 'pure', epsilon: 0.1 }, count: 1 }];
  const TOTAL = { epsilon: 1.5, delta: 1e-5 };

  async function sequentialCount(): Promise<number> {
    const l = await openLedger(join(tmp, `seq-${randomBytes(4).toString('hex')}.sqlite`));
    try {
      await l.setBudget('shared', TOTAL, { composition: 'pld' });
      let n = 0;
      for (;;) {
        try {
          await l.spend({ dataset: 'shared', epsilon: 0.1, delta: 0, operation: 'q', events: PURE });
          n++;
        } catch (e) {
          if (isBulwarkError(e, 'ERR_PRIVACY_BUDGET_EXCEEDED')) return n;
          throw e;
        }
      }
    } finally {
      await l.close();
    }
  }

  async function concurrent(location: string, procs: number, attempts: number) {
    const script = join(HERE, 'fixtures', 'spender.ts');
    const outs = await Promise.all(
      Array.from({ length: procs }, () =>
        run(
          process.execPath,
          ['--import', 'tsx', script, location, 'shared', '0.1', String(attempts), JSON.stringify(PURE), '0'],
          { timeout: 180_000 },
        ),
      ),
    );
    return outs.map((o) => JSON.parse(o.stdout) as { committed: number; refused: number; ids: string[] });
  }

  let expected: number | undefined;
  const expectedCount = async () => {
    expected ??= await sequentialCount();
    assert.ok(expected > 15, `the PLD figure admits more than basic composition: ${expected}`);
    return expected;
  };

  async function check(location: string, procs: number, attempts: number): Promise<void> {
    const n = await expectedCount();
    const l = await openLedger(location);
    await l.setBudget('shared', TOTAL, { composition: 'pld' });
    try {
      const res = await concurrent(location, procs, attempts);
      const committed = res.reduce((s, r) => s + r.committed, 0);
      assert.equal(committed, n, JSON.stringify(res.map((r) => [r.committed, r.refused])));
      assert.equal(
        res.reduce((s, r) => s + r.refused, 0),
        procs * attempts - n,
      );
      const st = await l.status('shared');
      assert.equal(st.spends, n);
      assert.equal(st.accounting.figure, 'pld');
      assert.ok(st.spent.epsilon <= TOTAL.epsilon * (1 + 1e-9), JSON.stringify(st));
      const h = await l.history('shared');
      assert.deepEqual(new Set(h.map((r) => r.id)), new Set(res.flatMap((r) => r.ids)));
    } finally {
      await l.close();
    }
  }

  it('PostgreSQL: 4 processes x 8 attempts commit exactly what one process would', {
    skip: pgReason ?? false,
  }, async () => {
    await check(`${PG_URL}?schema=${newSchema()}`, 4, 8);
  });

  it('SQLite: 3 processes x 8 attempts on one file commit exactly what one process would', async () => {
    await check(join(tmp, `shared-${randomBytes(4).toString('hex')}.sqlite`), 3, 8);
  });
});

describe('bulwark query budget set --composition (the built CLI)', () => {
  it('creates a pld budget, reports the composed total and the composition (--json too); refuses an unknown one naming the option', () => {
    const ledger = join(tmp, `cli-${randomBytes(4).toString('hex')}.sqlite`);
    const data = join(tmp, 'rows.csv');
    writeFileSync(data, 'v\n1\n2\n3\n');
    const bad = runBulwark([
      'query',
      'budget',
      'set',
      'tx',
      '--epsilon',
      '2',
      '--composition',
      'rdp',
      '--ledger',
      ledger,
    ]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--composition <c>' argument 'rdp' is invalid\. expected one of basic, pld/);
    const set = runBulwark([
      'query',
      'budget',
      'set',
      'tx',
      '--epsilon',
      '2',
      '--delta',
      '1e-5',
      '--composition',
      'pld',
      '--ledger',
      ledger,
    ]);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /pld composition/);
    assert.match(
      set.stderr,
      /proven for spends planned in advance/,
      'the scope of a pld budget is said where it is set',
    );
    let last:
      | { budget: { composition: string; spent: { epsilon: number }; remaining: { epsilon: number } } }
      | undefined;
    for (let i = 0; i < 4; i++) {
      const r = runBulwark([
        '--json',
        'query',
        'count',
        '--data',
        data,
        '--budget',
        'tx',
        '--epsilon',
        '0.5',
        '--seeded-noise',
        String(i),
        '--ledger',
        ledger,
      ]);
      assert.equal(r.code, 0, r.stderr);
      last = JSON.parse(r.stdout) as typeof last;
    }
    const pure = composeSpends(
      Array.from({ length: 4 }, () => ({
        epsilon: 0.5,
        delta: 0,
        events: [{ event: { kind: 'pure' as const, epsilon: 0.5 }, count: 1 }],
      })),
      'pld',
      1e-5,
    );
    assert.equal(pure.figure, 'pld');
    assert.equal(last?.budget.composition, 'pld');
    assert.ok(close(last?.budget.spent.epsilon ?? 0, pure.epsilon));
    assert.ok(close(last?.budget.remaining.epsilon ?? 0, 2 - pure.epsilon));
    // The status says which figure it charged, and both figures.
    const st = JSON.parse(
      runBulwark(['--json', 'query', 'budget', 'status', 'tx', '--ledger', ledger]).stdout,
    ) as {
      composition: string;
      spent: { epsilon: number };
      accounting: { basic: { epsilon: number }; pldEpsilon: number; figure: string };
    };
    assert.equal(st.composition, 'pld');
    assert.equal(st.accounting.figure, 'pld');
    assert.equal(st.accounting.basic.epsilon, 2);
    assert.ok(close(st.spent.epsilon, pure.epsilon));
    const human = runBulwark(['query', 'budget', 'status', 'tx', '--ledger', ledger]);
    assert.match(human.stdout, /pld composition: the PLD figure \(basic sum 2, PLD /);
    // Set again without --composition: the budget keeps pld.
    const again = JSON.parse(
      runBulwark([
        '--json',
        'query',
        'budget',
        'set',
        'tx',
        '--epsilon',
        '3',
        '--delta',
        '1e-5',
        '--ledger',
        ledger,
      ]).stdout,
    ) as { composition: string };
    assert.equal(again.composition, 'pld');
  });
});
