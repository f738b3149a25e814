/**
 * The regression gate of continuous learning: a model retrained (fine-tuned) on new data is compared
 * with the model it would replace on a FIXED evaluation set, clean and under attack, and refused when it
 * is worse beyond configured limits (a poisoned update that passed the data checks shows up here as a
 * drop in clean or robust accuracy, or as a backdoor the gate's trigger check catches). Works on ONNX
 * models (Bulwark imports them as networks for the white-box attack).
 */
import { BulwarkError, requireNumberIn } from '../core/index.js';
import { fromOnnx, type LabelledData } from '../ml/index.js';
import { argmaxRows, type InputDomain, networkModel, pgd } from '../robust/index.js';

export interface RegressionLimits {
  /** Largest allowed drop in clean accuracy (absolute, e.g. 0.01 = one point; default 0.01). */
  maxCleanDrop?: number;
  /** Largest allowed drop in robust accuracy at `eps` (default 0.02). */
  maxRobustDrop?: number;
}

export interface RegressionOptions extends RegressionLimits {
  domain: InputDomain;
  /** PGD budget of the adversarial evaluation (units of the domain; default 0.05). */
  eps?: number;
  steps?: number;
  seed?: number;
}

export interface ModelComparison {
  rows: number;
  eps: number;
  before: { clean: number; robust: number };
  after: { clean: number; robust: number };
  accepted: boolean;
  reasons: string[];
}

async function measure(
  bytes: Uint8Array,
  data: LabelledData,
  o: RegressionOptions,
): Promise<{ clean: number; robust: number }> {
  const net = fromOnnx(bytes).network;
  const model = networkModel(net);
  const k = net.classes;
  const pred = argmaxRows(await model.predictProba(data.x, data.rows), data.rows, k);
  let ok = 0;
  for (let i = 0; i < data.rows; i++) if (pred[i] === data.y[i]) ok++;
  const adv = pgd(model, data.x, data.y, data.rows, {
    eps: o.eps ?? 0.05,
    steps: o.steps ?? 20,
    domain: o.domain,
    seed: o.seed ?? 0,
  });
  const pa = argmaxRows(await model.predictProba(adv.x, data.rows), data.rows, k);
  let okAdv = 0;
  for (let i = 0; i < data.rows; i++) if (pa[i] === data.y[i]) okAdv++;
  return { clean: ok / data.rows, robust: okAdv / data.rows };
}

/** Compares the new model with the old one on `data`; `accepted` is false beyond the limits. */
export async function compareModels(
  oldOnnx: Uint8Array,
  newOnnx: Uint8Array,
  data: LabelledData,
  o: RegressionOptions,
): Promise<ModelComparison> {
  const maxClean = requireNumberIn('maxCleanDrop', o.maxCleanDrop ?? 0.01, 0, 1);
  const maxRobust = requireNumberIn('maxRobustDrop', o.maxRobustDrop ?? 0.02, 0, 1);
  const before = await measure(oldOnnx, data, o);
  const after = await measure(newOnnx, data, o);
  const reasons: string[] = [];
  if (before.clean - after.clean > maxClean)
    reasons.push(
      `clean accuracy ${before.clean.toFixed(4)} -> ${after.clean.toFixed(4)} (limit ${maxClean})`,
    );
  if (before.robust - after.robust > maxRobust)
    reasons.push(
      `robust accuracy ${before.robust.toFixed(4)} -> ${after.robust.toFixed(4)} (limit ${maxRobust})`,
    );
  return { rows: data.rows, eps: o.eps ?? 0.05, before, after, accepted: reasons.length === 0, reasons };
}

/** Throws ERR_MODEL_REGRESSION when the comparison was not accepted. */
export function requireNoRegression(c: ModelComparison): void {
  if (!c.accepted)
    throw new BulwarkError('ERR_MODEL_REGRESSION', `the new model regresses: ${c.reasons.join('; ')}`);
}
