import { BulwarkError, requireFile } from '../../core/index.js';
import type { Dataset, Pipeline } from '../../data/index.js';
import { type GateReport, loadGate, requireGatePassed, runGate } from '../../integrity/index.js';
import type { LabelledData } from '../../ml/index.js';
import { openLedger } from '../../privacy/index.js';
import {
  applyTabularTrigger,
  checkTabularTrigger,
  type InputDomain,
  type RedTeamModel,
} from '../../robust/index.js';
import { locationOrigin } from '../options.js';
import type { Io } from '../output.js';

const fmt = (v: number | null) => (v === null ? 'n/a' : Number(v.toPrecision(4)).toString());

/** The gate's table, one line per check. */
export function gateTable(r: GateReport): string {
  const w = Math.max(5, ...r.checks.map((c) => c.name.length));
  const lines = [`${'check'.padEnd(w)}  value      threshold   result`];
  for (const c of r.checks)
    lines.push(
      `${c.name.padEnd(w)}  ${fmt(c.value).padEnd(9)}  ${`${c.op} ${c.threshold}`.padEnd(10)}  ${c.passed ? 'pass' : 'FAIL'}${c.error ? ` (${c.error})` : ''}`,
    );
  lines.push(
    r.passed ? 'Security gate: passed.' : `Security gate: FAILED (${r.failed} of ${r.checks.length}).`,
  );
  return lines.join('\n');
}

/** `bulwark evaluate --gate`: measures the gate's checks on the first model, prints the table, exits 5 on failure. */
export async function runEvaluateGate(
  io: Io,
  o: {
    gate: string;
    ledger?: string;
    rows: number;
    steps: number;
    restarts: number;
    seed: number;
  },
  model: RedTeamModel,
  pipeline: Pipeline | null,
  classValues: string[] | null,
  raw: Dataset,
  test: LabelledData,
  domain: InputDomain,
  members: LabelledData | undefined,
  /** What the result records of the inputs (protected data files: protected-data.ts). */
  recorded: Record<string, unknown> = {},
): Promise<void> {
  await requireFile(o.gate, 'gate file');
  const spec = await loadGate(o.gate);
  const wantsLedger = spec.checks.some((c) => c.metric === 'privacy-spent');
  const location = o.ledger ?? process.env['BULWARK_LEDGER'];
  const ledger =
    wantsLedger && location
      ? await openLedger(location, {
          option: locationOrigin('--ledger', o.ledger !== undefined, 'BULWARK_LEDGER'),
        })
      : undefined;
  try {
    const triggered = async (trigger: Record<string, number | string>, target: string) => {
      if (!pipeline || !classValues)
        throw new BulwarkError(
          'ERR_GATE_METRIC',
          'backdoor-success needs a model trained by bulwark train (its pipeline metadata)',
        );
      checkTabularTrigger(trigger, raw);
      const t = classValues.indexOf(target);
      if (t < 0)
        throw new BulwarkError(
          'ERR_GATE_METRIC',
          `backdoor-success: target "${target}" is not one of the classes (${classValues.join(', ')})`,
        );
      const trig = pipeline.transform(applyTabularTrigger(raw, trigger)).matrix;
      return { clean: test.x, triggered: trig, y: test.y, target: t };
    };
    const r = await runGate(spec, {
      model,
      test,
      domain,
      ...(members ? { members } : {}),
      triggered,
      ...(ledger ? { ledger } : {}),
      rows: o.rows,
      steps: o.steps,
      restarts: o.restarts,
      seed: o.seed,
    });
    io.result({ gate: o.gate, ...recorded, ...r }, () => gateTable(r));
    requireGatePassed(r);
  } finally {
    await ledger?.close();
  }
}
