/**
 * The measured cost table: every claim of the article (./claims.ts) beside our figure for it, from a
 * committed benchmark result (bench/results/*.json, read with the planner's reader) or from this run's
 * own measurements (./measure.ts), with a verdict. A figure that is not there is "not measured" — the
 * row says which file or figure is missing and never shows a number.
 */
import type { BenchResult, BenchSet } from '../plan/index.js';
import { CLAIMS, type Claim, SECTIONS, type Section } from './claims.js';

export const VERDICTS = ['confirms', 'contradicts', 'not comparable', 'not measured'] as const;
export type Verdict = (typeof VERDICTS)[number];

/** Where a row's number comes from: a results file, the figures (or `facts.KEY`) read, the run's date. */
export interface RowSource {
  file: string;
  figures: string[];
  runDate: string | null;
}

export interface CostRow {
  claim: string;
  section: Section;
  claimText: string;
  /** What was measured, in words. */
  what: string;
  /** Our figure in the claim's unit (null: not measured, or a claim with no number). */
  measured: number | null;
  unit: string;
  /** measured / the middle of the claim's range. */
  ratio: number | null;
  verdict: Verdict;
  why: string;
  sources: RowSource[];
}

/** The name of this table's own results file (rows measured in the command cite it). */
export const COSTS_BENCH = 'costs';

interface Ref {
  bench: string;
  id: string;
  value: number;
}

const fileOf = (bench: string) => `bench/results/${bench}.json`;

function figure(b: BenchSet, bench: string, id: string): Ref | string {
  const r = b.get(bench);
  if (!r) return `${fileOf(bench)} is not committed`;
  const f = r.figures.get(id);
  if (!f) return `${fileOf(bench)} has no ${r.empty.has(id) ? 'value for figure' : 'figure'} ${id}`;
  return { bench, id, value: f.median };
}

function fact(b: BenchSet, bench: string, key: string): Ref | string {
  const r = b.get(bench);
  if (!r) return `${fileOf(bench)} is not committed`;
  const v = r.facts[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) return `${fileOf(bench)} has no fact ${key}`;
  return { bench, id: `facts.${key}`, value: v };
}

/** A JSON-object fact (written as an object or as its JSON text), or why it is not there. */
function factObject(b: BenchSet, bench: string, key: string): object | string {
  const r = b.get(bench);
  if (!r) return `${fileOf(bench)} is not committed`;
  let o: unknown = r.facts[key];
  if (typeof o === 'string') {
    try {
      o = JSON.parse(o);
    } catch {
      return `${fileOf(bench)}: fact ${key} is not JSON`;
    }
  }
  if (o === null || typeof o !== 'object') return `${fileOf(bench)} has no fact ${key}`;
  return o;
}

/** A number inside a JSON-object fact (the gateway's stage means are written that way). */
function factField(b: BenchSet, bench: string, key: string, field: string): Ref | string {
  const o = factObject(b, bench, key);
  if (typeof o === 'string') return o;
  const v = (o as Record<string, unknown>)[field];
  if (typeof v !== 'number' || !Number.isFinite(v)) return `${fileOf(bench)}: fact ${key} has no ${field}`;
  return { bench, id: `facts.${key}`, value: v };
}

/** The sum of a JSON-object fact's numbers. */
function factSum(b: BenchSet, bench: string, key: string): Ref | string {
  const o = factObject(b, bench, key);
  if (typeof o === 'string') return o;
  const vals = Object.values(o as Record<string, unknown>).filter(
    (v): v is number => typeof v === 'number' && Number.isFinite(v),
  );
  if (vals.length === 0) return `${fileOf(bench)}: fact ${key} has no numbers`;
  return { bench, id: `facts.${key}`, value: vals.reduce((a, x) => a + x, 0) };
}

function sourcesOf(b: BenchSet, refs: readonly Ref[]): RowSource[] {
  const by = new Map<string, string[]>();
  for (const r of refs) {
    const l = by.get(r.bench) ?? [];
    if (!l.includes(r.id)) l.push(r.id);
    by.set(r.bench, l);
  }
  return [...by].map(([bench, figures]) => ({
    file: fileOf(bench),
    figures,
    runDate: (b.get(bench) as BenchResult | undefined)?.finishedAt ?? null,
  }));
}

const claimById = new Map(CLAIMS.map((c) => [c.id, c]));

/** Rounds to the claim's own precision (whole numbers; tenths for "x" factors) before comparing. */
function compare(c: Claim, v: number): { verdict: Verdict; why: string; ratio: number | null } {
  if (c.low === undefined || c.high === undefined) return { verdict: 'not comparable', why: '', ratio: null };
  const r = c.unit === 'x' ? Math.round(v * 10) / 10 : Math.round(v);
  const mid = (c.low + c.high) / 2;
  const ratio = mid !== 0 ? v / mid : null;
  const range = c.low === c.high ? `${c.low} ${c.unit}` : `${c.low}–${c.high} ${c.unit}`;
  if (r >= c.low && r <= c.high) return { verdict: 'confirms', why: `within the article's ${range}`, ratio };
  const times = (x: number) => (x >= 10 ? String(Math.round(x)) : x.toPrecision(2));
  const factor =
    r < c.low
      ? v > 0 && c.low / v >= 2
        ? ` (${times(c.low / v)}× below its low end)`
        : ''
      : c.high > 0 && v / c.high >= 2
        ? ` (${times(v / c.high)}× its high end)`
        : '';
  return {
    verdict: 'contradicts',
    why: `${r < c.low ? 'lower' : 'higher'} than the article's ${range}${factor}`,
    ratio,
  };
}

interface RowSpec {
  claim: string;
  what: string;
  /** Figures read; a string is the reason one is missing. */
  refs: Array<Ref | string>;
  /** Our figure (claim unit) from the refs' values, in order. */
  value?: (v: number[]) => number;
  /** A reason the figure cannot be compared with the claim (shown with the number). */
  notComparable?: string;
  /** Further explanation after the verdict's reason (from the refs' values when a function). */
  note?: string | ((v: number[]) => string);
  /** Whether `value` is only a lower bound. */
  lowerBound?: boolean;
}

function row(b: BenchSet, s: RowSpec): CostRow {
  const c = claimById.get(s.claim);
  if (!c) throw new Error(`cost table: unknown claim ${s.claim}`);
  const missing = s.refs.filter((r): r is string => typeof r === 'string');
  const refs = s.refs.filter((r): r is Ref => typeof r !== 'string');
  const out = (measured: number | null, ratio: number | null, verdict: Verdict, why: string): CostRow => ({
    claim: c.id,
    section: c.section,
    claimText: c.text,
    what: s.what,
    unit: c.unit,
    measured,
    ratio,
    verdict,
    why,
    sources: sourcesOf(b, refs),
  });
  if (missing.length > 0) return out(null, null, 'not measured', [...new Set(missing)].join('; '));
  const measured = s.value ? s.value(refs.map((r) => r.value)) : null;
  const noteText = typeof s.note === 'function' ? s.note(refs.map((r) => r.value)) : s.note;
  const note = noteText ? ` ${noteText}` : '';
  if (measured === null || !Number.isFinite(measured)) {
    return out(null, null, 'not comparable', `${s.notComparable ?? 'no figure of the same kind'}.${note}`);
  }
  const cmp = compare(c, measured);
  if (s.notComparable) {
    return out(
      measured,
      cmp.ratio,
      'not comparable',
      `${s.notComparable}; taken at face value it would be ${cmp.why}.${note}`,
    );
  }
  return out(measured, cmp.ratio, cmp.verdict, `${s.lowerBound ? 'at least; ' : ''}${cmp.why}.${note}`);
}

/** The first figure read, as it is. */
const first = (v: number[]) => v[0] as number;
const overheadPct = (v: number[]) => 100 * ((v[0] as number) / (v[1] as number) - 1);
const BENEFIT_WHY =
  'a qualitative rating, not a measurement; Bulwark models benefit per threat (docs/threat-model.md, docs/plan.md), and the effectiveness rows of "Defense Effectiveness Metrics" are measured';

/** Every row of the table, from the committed results plus this run's (`costs`) in `b`. */
export function costRows(b: BenchSet): CostRow[] {
  const C = COSTS_BENCH;
  const specs: RowSpec[] = [];
  const encTraining = (claim: string): RowSpec[] => [
    {
      claim,
      what: 'training time, protected CSV decrypted (revealed) first, vs the plain CSV (same MLP, same rows)',
      refs: [figure(b, C, 'train.reveal_overhead_pct')],
      value: first,
      note: 'Field decryption runs once per training run, before the epochs; the longer the training, the smaller the share.',
    },
    {
      claim,
      what: 'training time on the protected CSV as is: personal fields stay encrypted (they are not features)',
      refs: [figure(b, C, 'train.direct_overhead_pct')],
      value: first,
      note: "Bulwark's default: the model never needs the personal fields in clear.",
    },
  ];
  const dpAccuracy = (claim: string): RowSpec[] => [
    {
      claim,
      what: 'relative accuracy loss, DP logistic regression (objective perturbation, ε = 1) vs non-private, generated fraud data',
      refs: [
        figure(b, C, 'dp.eps1.acc_reduction_pct'),
        figure(b, C, 'dp.nonprivate.auc'),
        figure(b, C, 'dp.eps1.auc'),
      ],
      value: first,
      note: (v) =>
        `With ~2 % fraud, accuracy mostly counts the majority class: ROC AUC, which measures how well the model ranks fraud, falls from ${(v[1] as number).toFixed(3)} to ${(v[2] as number).toFixed(3)}.`,
    },
    {
      claim,
      what: 'relative accuracy loss, Adult (one-hot, 105 features) DP logistic regression at ε = 1 vs scikit-learn non-private',
      refs: [
        fact(b, 'dp', 'adult.onehot.nonprivate_sklearn'),
        figure(b, 'dp', 'adult.onehot.eps1.replace-one.acc'),
      ],
      value: (v) => 100 * (1 - (v[1] as number) / (v[0] as number)),
    },
    {
      claim,
      what: 'relative accuracy loss, DP-SGD at ε = 1 vs non-private, small-data MNIST MLP (membership-inference set-up)',
      refs: [
        fact(b, 'robust', 'mia.non-private.testAccuracy'),
        fact(b, 'robust', 'mia.DP-SGD eps 1.testAccuracy'),
      ],
      value: (v) => 100 * (1 - (v[1] as number) / (v[0] as number)),
      note: 'A deliberately small training set (for membership inference): DP-SGD costs far more here than on large data.',
    },
  ];
  const teeInference = (claim: string, factor: boolean): RowSpec[] => [
    {
      claim,
      what: 'one transaction through the SOFTWARE enclave (session seal/open + worker process) vs plain ONNX Runtime in process',
      refs: [figure(b, C, 'tee.slowdown_x')],
      value: (v) => (factor ? (v[0] as number) : 100 * ((v[0] as number) - 1)),
      notComparable:
        'software mode is not a TEE (no memory encryption, no enclave exits, no hardware here): this is the protocol and isolation cost only, a lower bound for a real enclave',
    },
    {
      claim,
      what: 'loopback HTTP round trip with the attested session vs plain (attest bench)',
      refs: [figure(b, 'attest', 'http.attested'), figure(b, 'attest', 'http.plain')],
      value: (v) => (factor ? (v[0] as number) / (v[1] as number) : overheadPct(v)),
      notComparable: 'session cryptography over HTTP without an enclave: not a TEE',
    },
  ];

  // Secure AI Performance Benchmarks.
  specs.push(...encTraining('table.data-encryption.impact'));
  specs.push({
    claim: 'table.data-encryption.cost',
    what: 'CPU time: protect once + decrypt + train vs plain training (same MLP, same rows)',
    refs: [figure(b, C, 'train.cost_increase_pct')],
    value: first,
    note: 'Counts one protect per training run (conservative: a dataset is protected once and trained on many times).',
  });
  specs.push(...dpAccuracy('table.differential-privacy.impact'));
  specs.push({
    claim: 'table.differential-privacy.cost',
    what: 'compute: DP-SGD epoch vs plain epoch, same MNIST MLP, 1 thread',
    refs: [figure(b, 'dp', 'mnist.dpsgd.epoch_s'), figure(b, 'ml-core', 'mnist.epoch_s')],
    value: overheadPct,
    note: 'Per-example gradients and clipping; the two epochs come from two benchmark runs on the same machine.',
  });
  specs.push({
    claim: 'table.differential-privacy.cost',
    what: 'CPU time: DP logistic regression (objective perturbation, ε = 1) vs non-private L-BFGS fit, generated fraud data',
    refs: [figure(b, C, 'dp.eps1.cpu_s'), figure(b, C, 'dp.nonprivate.cpu_s')],
    value: overheadPct,
  });
  specs.push({
    claim: 'table.model-encryption.impact',
    what: 'model load time: signed, encrypted package vs plain ONNX (100 MB model, paired)',
    refs: [figure(b, 'model-package', '100mb.paired_ratio')],
    value: (v) => 100 * ((v[0] as number) - 1),
    note: 'Once per load (read + verify + decrypt); inference then runs the same decrypted graph in the same ONNX Runtime, with no per-request cost.',
  });
  specs.push({
    claim: 'table.model-encryption.impact',
    what: 'model load time: package vs plain ONNX (1 GB model, paired)',
    refs: [figure(b, 'model-package', '1gb.paired_ratio')],
    value: (v) => 100 * ((v[0] as number) - 1),
  });
  specs.push({
    claim: 'table.model-encryption.cost',
    what: 'one-off costs: protect a 100 MB model; extra load time per pod start',
    refs: [
      figure(b, 'model-package', '100mb.protect'),
      figure(b, 'model-package', '100mb.load'),
      figure(b, 'model-package', '100mb.plain_load'),
    ],
    notComparable:
      'model encryption costs seconds per publish and per load, not a share of the serving bill; the planner prices it per workload (docs/plan.md)',
  });
  specs.push(...teeInference('table.tee.impact', false));
  specs.push({
    claim: 'table.tee.cost',
    what: 'price of confidential-computing instances',
    refs: [],
    notComparable: 'a cloud price, not measurable on this machine (no TEE hardware)',
  });
  specs.push({
    claim: 'table.adversarial-training.impact',
    what: 'training time: PGD adversarial training epoch (eps 0.1) vs plain epoch, MNIST MLP',
    refs: [figure(b, 'robust', 'mnist.at0.1.epoch_s'), fact(b, 'robust', 'mnist.bulwark.normalEpochSeconds')],
    value: overheadPct,
    note: 'PGD training runs an attack of several gradient steps for every batch (Madry et al. 2018).',
  });
  specs.push({
    claim: 'table.adversarial-training.impact',
    what: 'training time: PGD-7 adversarial training epoch (eps 0.1) vs plain epoch, fraud MLP, same rows (paired)',
    refs: [figure(b, C, 'at.overhead_pct')],
    value: first,
  });
  specs.push({
    claim: 'table.adversarial-training.cost',
    what: 'training compute: PGD adversarial training epoch vs plain epoch, MNIST MLP, 1 thread',
    refs: [figure(b, 'robust', 'mnist.at0.1.epoch_s'), fact(b, 'robust', 'mnist.bulwark.normalEpochSeconds')],
    value: overheadPct,
  });
  specs.push({
    claim: 'table.adversarial-training.cost',
    what: 'training compute: PGD-7 adversarial training epoch vs plain epoch, fraud MLP (one process, one thread of work)',
    refs: [figure(b, C, 'at.pgd_epoch_s'), figure(b, C, 'at.plain_epoch_s')],
    value: overheadPct,
  });
  specs.push({
    claim: 'table.input-validation.impact',
    what: 'validate stage of the gateway, mean per request, one request at a time (full stack)',
    refs: [factField(b, 'gateway', 'full.sequential_stage_means_us', 'validate')],
    value: (v) => (v[0] as number) / 1000,
  });
  specs.push({
    claim: 'table.input-validation.cost',
    what: 'validate stage / the whole per-request time with protections off (sum of its stage means)',
    refs: [
      factField(b, 'gateway', 'full.sequential_stage_means_us', 'validate'),
      factSum(b, 'gateway', 'off.sequential_stage_means_us'),
    ],
    value: (v) => (100 * (v[0] as number)) / (v[1] as number),
  });
  for (const m of [
    'data-encryption',
    'differential-privacy',
    'model-encryption',
    'tee',
    'adversarial-training',
    'input-validation',
  ]) {
    specs.push({
      claim: `table.${m}.benefit`,
      what: 'security benefit',
      refs: [],
      notComparable: BENEFIT_WHY,
    });
  }

  // Performance Impact Analysis.
  specs.push(...encTraining('impact.encryption-training-time'));
  specs.push(...dpAccuracy('impact.dp-accuracy-eps1'));
  specs.push({
    claim: 'impact.encrypted-memory-storage',
    what: 'storage: protected CSV vs plain CSV (every personal field encrypted, the rest kept)',
    refs: [figure(b, C, 'storage.increase_pct')],
    value: first,
  });
  specs.push({
    claim: 'impact.encrypted-memory-storage',
    what: 'memory: heap of every row held as strings, protected vs plain (after a full GC)',
    refs: [figure(b, C, 'memory.increase_pct')],
    value: first,
  });

  // Real-World Performance Metrics.
  specs.push(...teeInference('realworld.tee-inference', true));
  for (const size of ['1mb', '100mb', '1gb']) {
    specs.push({
      claim: 'realworld.encrypted-model-size',
      what: `package size vs the ONNX model (${size.replace('mb', ' MB').replace('gb', ' GB')})`,
      refs: [fact(b, 'model-package', `${size}.overhead_percent`)],
      value: first,
      note: 'AES-256-GCM adds a 16-byte tag per frame plus a signed manifest: size grows by bytes, not by a share.',
    });
  }
  specs.push({
    claim: 'realworld.session-setup',
    what: 'client session set-up after fetching the attestation (verify software attestation + policy + HPKE)',
    refs: [figure(b, 'attest', 'setup.client')],
    value: first,
    note: 'Excludes the network round trip that fetches the document (one RTT).',
  });
  specs.push({
    claim: 'realworld.session-setup',
    what: 'client session set-up, real-format Nitro document, nothing cached (5-certificate chain)',
    refs: [figure(b, 'attest', 'setup.client.nitro.cold')],
    value: first,
  });

  // Defense Effectiveness Metrics.
  for (const [atk, label] of [
    ['pgd', 'PGD'],
    ['fgsm', 'FGSM'],
  ] as const) {
    specs.push({
      claim: 'defense.attack-success-without-at',
      what: `${label} (eps 0.1) success rate against the normally trained MNIST MLP`,
      refs: [fact(b, 'robust', `claims.mnist.normal.${atk}.eps0.1.successRate`)],
      value: first,
    });
    specs.push({
      claim: 'defense.attack-success-with-at',
      what: `${label} (eps 0.1) success rate against the PGD-trained (eps 0.1) MNIST MLP`,
      refs: [fact(b, 'robust', `claims.mnist.PGD-trained eps 0.1.${atk}.eps0.1.successRate`)],
      value: first,
    });
  }
  specs.push({
    claim: 'defense.attack-success-without-at',
    what: 'schema-aware PGD-20 (eps 0.1) success rate on held-out fraud the baseline fraud MLP catches',
    refs: [figure(b, C, 'at.success_before_pct')],
    value: first,
  });
  specs.push({
    claim: 'defense.attack-success-with-at',
    what: 'the same attack against the fraud MLP after 3 epochs of PGD adversarial fine-tuning',
    refs: [figure(b, C, 'at.success_after_pct')],
    value: first,
  });
  specs.push({
    claim: 'defense.input-validation-caught',
    what: 'basic adversarial examples (FGSM, PGD ignoring the schema) refused by input validation, generated fraud data',
    refs: [figure(b, C, 'validation.basic_caught_pct')],
    value: first,
    note: 'An attacker unaware of the schema moves integer and one-hot features off their valid values; the schema check refuses those.',
  });
  specs.push({
    claim: 'defense.input-validation-caught',
    what: 'schema-aware PGD examples (valid inputs only) refused by input validation',
    refs: [figure(b, C, 'validation.aware_caught_pct')],
    value: first,
    notComparable: 'not a basic attack: it stays inside the schema, so validation cannot refuse it by design',
  });
  // Ensemble rows: the improvement figure `defences.<key>_improvement_x` first, then each `through_pct`.
  const ensemble = (
    key: string,
    what: string,
    through: string[],
    note: (pct: (i: number) => string) => string,
  ) =>
    specs.push({
      claim: 'defense.ensemble-improvement',
      what,
      refs: [
        figure(b, C, `defences.${key}_improvement_x`),
        ...through.map((m) => figure(b, C, `defences.${m}.through_pct`)),
      ],
      value: first,
      lowerBound: b.get(C)?.facts[`defences.${key}_improvement_is_lower_bound`] === 1,
      note: (v) => note((i) => (v[i] as number).toFixed(1)),
    });
  ensemble(
    'ensemble',
    'adversarial examples getting through the best single defence / through validation + Mahalanobis + feature squeezing together',
    ['validation', 'mahalanobis', 'squeeze', 'ensemble'],
    (pct) =>
      `Over FGSM, PGD and schema-aware PGD on held-out transactions, the share of attacked rows that got through: validation ${pct(1)} %, Mahalanobis ${pct(2)} %, feature squeezing ${pct(3)} %, all three ${pct(4)} %. Validation stops every schema-unaware example and none of the schema-aware ones; the detectors, calibrated at 1 % false positives, add little.`,
  );
  ensemble(
    'ensemble_at',
    'the same, with adversarial training as a fourth member: best single defence (adversarial training included) / all four together',
    ['adversarial-training', 'ensemble_at'],
    (pct) =>
      `Got through: adversarial training alone ${pct(1)} %, all four ${pct(2)} % of attacked rows (the attacks are re-run against the adversarially trained model).`,
  );
  return specs.map((s) => row(b, s));
}

/** Claims with no row (the test requires none). */
export function uncoveredClaims(rows: readonly CostRow[]): string[] {
  const have = new Set(rows.map((r) => r.claim));
  return CLAIMS.filter((c) => !have.has(c.id)).map((c) => c.id);
}

export { SECTIONS };
