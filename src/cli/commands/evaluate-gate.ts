import { BulwarkError, requireFile } from '../../core/index.js';
import type { Dataset, Pipeline } from '../../data/index.js';
import {
  type GateReport,
  loadGate,
  requireDisjoint,
  requireGatePassed,
  runGate,
} from '../../integrity/index.js';
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

const fmt = (v: number | null | undefined) =>
  v === null || v === undefined ? 'n/a' : Number(v.toPrecision(4)).toString();

/**
 * The gate's table, one line per check: the value, the one-sided bound at the gate's confidence and
 * the rows a share is over (so that 0 of 10 reads as what it is), the threshold and the verdict.
 */
export function gateTable(r: GateReport): string {
  const w = Math.max(5, ...r.checks.map((c) => c.name.length));
  const conf = `${Number((100 * r.confidence).toPrecision(3))} % bound`;
  const lines = [`${'check'.padEnd(w)}  value      ${conf.padEnd(12)}  rows    threshold   result`];
  for (const c of r.checks)
    lines.push(
      `${c.name.padEnd(w)}  ${fmt(c.value).padEnd(9)}  ${(c.bound === undefined ? '-' : fmt(c.bound)).padEnd(12)}  ${String(c.rows ?? '-').padEnd(6)}  ${`${c.op} ${c.threshold}`.padEnd(10)}  ${c.passed ? 'pass' : 'FAIL'}${c.error ? ` (${c.error})` : ''}`,
    );
  lines.push(
    `${r.passed ? 'Security gate: passed.' : `Security gate: FAILED (${r.failed} of ${r.checks.length}).`} Judged on the ${r.judge === 'bound' ? `${conf} of each share` : 'measured values'}.`,
  );
  return lines.join('\n');
}

/**
 * What the gate refuses before measuring anything (`bulwark evaluate --gate`): more than one model (only
 * the first would be gated: a second `--model` would pass unjudged), a `--label` that is not the one
 * the model predicts (the checks would measure agreement with another column; without the gate it is a
 * note), and a holdout set that shares rows with `--members` (ERR_DATA_OVERLAP: the model's own training
 * rows inflate its accuracy and make the membership test compare members with members).
 */
export function checkGateInputs(
  o: { model: readonly string[]; label: string; data: string; members?: string },
  modelLabel: string | undefined,
  test: LabelledData,
  members: LabelledData | undefined,
): void {
  if (o.model.length !== 1)
    throw new BulwarkError(
      'ERR_USAGE',
      `--gate judges one model; ${o.model.length} --model options were given (the others would not be gated): run the gate once per model`,
      { details: { option: '--model' } },
    );
  if (modelLabel !== undefined && modelLabel !== o.label)
    throw new BulwarkError(
      'ERR_USAGE',
      `--label "${o.label}": the model predicts "${modelLabel}"; the gate measures the model against its own label`,
      { details: { option: '--label' } },
    );
  if (members) requireDisjoint(test, members, `the holdout set (--data ${o.data})`, `--members ${o.members}`);
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
