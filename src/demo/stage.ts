import type { AuditEventInput, AuditLog } from '../audit/index.js';
import type { Rng } from '../core/index.js';
import type { Dataset, Schema } from '../data/index.js';
import type { Network } from '../ml/index.js';
import type { DpTabularResult } from '../privacy/index.js';
import type { Block } from '../report/index.js';
import type { TrainTabularResult } from '../train/index.js';

/**
 * The demo is a fixed list of stages, run in order; each reads what earlier stages left in the shared
 * state and returns its section of the report. Each issue that lands adds its stage here, so the demo
 * is always the whole system working together.
 */
export interface DemoOptions {
  /** Output folder (created if missing). */
  outDir: string;
  /** Smaller sizes for a fast look. */
  quick: boolean;
  /** Seed for the generated data and the ML (the demo is reproducible for a seed). */
  seed: number;
  /** Progress of the current stage: fraction done in [0, 1]. */
  onProgress?: (stage: string, fraction: number) => void;
}

export interface DemoState {
  /** The generated transactions file. */
  dataPath?: string;
  dataset?: Dataset;
  schema?: Schema;
  label?: string;
  /** The baseline (non-private) model: later stages compare against it. */
  baseline?: { path: string; result: TrainTabularResult };
  /** The DP model (ε = 0.5, the article's case study): the model the demo packages and serves. */
  dp?: { path: string; result: DpTabularResult };
  /** The adversarially trained variant (baseline fine-tuned with PGD): measured beside the DP model. */
  robust?: { path: string; network: Network };
  /** The case-study package the package stage signed (the model the gateway is meant to serve). */
  served?: { name: string; packagePath: string; packageDigest: string; modelDigest: string };
  /** The demo's audit log while it is open: the runner records every stage in it (stages/audit.ts). */
  audit?: AuditLog;
}

export interface StageContext {
  readonly options: DemoOptions;
  readonly state: DemoState;
  readonly rng: Rng;
  progress(fraction: number): void;
}

export interface StageResult {
  blocks: Block[];
  /** Figures for report.json's `summary` (flat and stable, for scripts). */
  summary?: Record<string, string | number | boolean>;
  status?: 'ok' | 'skipped';
  /** Audit events for what the stage made or used (dataset, keys, model digests), logged after it. */
  events?: AuditEventInput[];
}

export interface DemoStage {
  id: string;
  title: string;
  run(ctx: StageContext): Promise<StageResult>;
}
