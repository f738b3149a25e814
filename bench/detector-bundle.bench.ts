/**
 * What sealing the gateway's detectors into the model package costs: fitting and calibrating the
 * bundle (Mahalanobis on inputs, stateful, PRADA: `fitDetectorBundle`, as `bulwark model fit-detectors`
 * runs it), its size, the package's size with and without it, loading the package with and without it
 * (verify + decrypt + ONNX Runtime session; with it, also the bundle's digest and JSON parse), and the
 * gateway's loading of the bundle's detectors (`loadDetectorBundle`: every check, base64 matrices).
 *
 * Two widths: a tabular model (30 features, 2 classes, as a fraud model after one-hot encoding) and an
 * MNIST-sized one (784 features, 10 classes), where the Mahalanobis precision matrix (784 x 784 float32)
 * dominates. The rows are seeded Gaussian blobs: the state's size depends on the width and classes, not
 * on the values. The models are MLPs of the same width (one hidden layer of 64), exported to ONNX.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SeededRng } from '../src/core/index.js';
import { Keyring } from '../src/keys/index.js';
import { mlp, toOnnx } from '../src/ml/index.js';
import {
  generateSigningKey,
  loadProtectedModel,
  protectModel,
  publicKeyPem,
  trustPolicyFrom,
} from '../src/model/index.js';
import { fitDetectorBundle, loadDetectorBundle } from '../src/robust/index.js';
import type { Benchmark, Figure } from './harness.js';

const CASES = [
  { id: 'tabular', label: 'tabular (30 features, 2 classes)', d: 30, k: 2, rows: 4000 },
  { id: 'mnist', label: 'MNIST-sized (784 features, 10 classes)', d: 784, k: 10, rows: 4000 },
];

function blobs(rows: number, d: number, k: number, seed: number): { x: Float32Array; y: Int32Array } {
  const rng = new SeededRng(seed);
  const centres = Array.from({ length: k }, () => Float32Array.from({ length: d }, () => rng.uniform(0, 1)));
  const x = new Float32Array(rows * d);
  const y = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const c = r % k;
    y[r] = c;
    for (let j = 0; j < d; j++) x[r * d + j] = (centres[c]?.[j] as number) + rng.normal(0, 0.15);
  }
  return { x, y };
}

const bench: Benchmark = {
  name: 'detector-bundle',
  description: 'detectors sealed in the model package: fit, size, package load with and without them',
  async run(ctx) {
    const figures: Figure[] = [];
    const facts: Record<string, string | number | boolean> = {};
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-det-'));
    process.env['BULWARK_BENCH_PASS'] = randomBytes(16).toString('hex');
    const kr = await Keyring.create(join(dir, 'kr.json'), {
      secret: { env: 'BULWARK_BENCH_PASS' },
      scrypt: { N: 2 ** 14, r: 8, p: 1 },
    });
    await kr.createKey('data');
    const signer = generateSigningKey();
    const trust = await trustPolicyFrom({
      version: 1,
      signers: [{ name: 'bench', publicKey: publicKeyPem(signer.publicKey), models: ['bench-*'] }],
    });
    try {
      for (const c of CASES) {
        const { x, y } = blobs(c.rows, c.d, c.k, 1);
        const onnx = toOnnx(mlp({ inputs: c.d, hidden: [64], classes: c.k, rng: 1 }));
        const fit: number[] = [];
        const loadWith: number[] = [];
        const loadWithout: number[] = [];
        const detLoad: number[] = [];
        let bundleBytes = 0;
        let withBytes = 0;
        let withoutBytes = 0;
        for (let r = 0; r < ctx.repeats; r++) {
          ctx.log(`${c.label}: round ${r + 1}/${ctx.repeats}`);
          let t0 = performance.now();
          const bundle = await fitDetectorBundle(x, y, c.rows, { classes: c.k, seed: r });
          fit.push((performance.now() - t0) / 1000);
          bundleBytes = Buffer.byteLength(JSON.stringify(bundle));
          const pWith = join(dir, `${c.id}-with.bwm`);
          const pWithout = join(dir, `${c.id}-without.bwm`);
          for (const [p, det] of [
            [pWith, bundle],
            [pWithout, undefined],
          ] as const) {
            rmSync(p, { force: true });
            await protectModel(onnx, p, {
              keyring: kr,
              signingKey: signer,
              name: `bench-${c.id}`,
              version: '1',
              ...(det ? { detectors: det } : {}),
            });
          }
          withBytes = statSync(pWith).size;
          withoutBytes = statSync(pWithout).size;
          // Loads take milliseconds: several per round, alternating which package loads first, the
          // first pair a warm-up (not recorded).
          let json: unknown = null;
          for (let i = 0; i < 6; i++) {
            const loads: [string, number[]][] = [
              [pWith, loadWith],
              [pWithout, loadWithout],
            ];
            if (i % 2 === 1) loads.reverse();
            for (const [p, out] of loads) {
              t0 = performance.now();
              const l = await loadProtectedModel(p, { keyring: kr, trust });
              if (i > 0) out.push((performance.now() - t0) / 1000);
              if (l.detectors !== null) json = l.detectors;
              await l.model.close();
            }
          }
          t0 = performance.now();
          loadDetectorBundle(json, { features: c.d, classes: c.k });
          detLoad.push((performance.now() - t0) / 1000);
        }
        facts[`${c.id}.bundle_bytes`] = bundleBytes;
        facts[`${c.id}.package_bytes_without`] = withoutBytes;
        facts[`${c.id}.package_bytes_with`] = withBytes;
        facts[`${c.id}.package_bytes_added`] = withBytes - withoutBytes;
        const f = (id: string, label: string, samples: number[]) =>
          figures.push({
            id: `${c.id}.${id}`,
            label: `${c.label}: ${label}`,
            system: 'bulwark',
            unit: 's',
            better: 'lower',
            samples,
          });
        f('fit', `fit + calibrate the three detectors on ${c.rows} rows (half each)`, fit);
        f(
          'load_with',
          'load the package with its detectors (verify, decrypt, session, bundle parse)',
          loadWith,
        );
        f('load_without', 'load the same model packaged without detectors', loadWithout);
        f('detectors_load', "the gateway's loadDetectorBundle (checks, matrices decoded)", detLoad);
      }
      return {
        figures,
        facts,
        notes: [
          'Detectors: Mahalanobis on the inputs (Ledoit-Wolf shrunk covariance, its inverse saved as float32, base64), stateful (k 20, history 500, 64 projected dimensions) and PRADA (defaults), calibrated at a 1 % false-positive rate on 100 benign streams of 500 queries from the calibration half.',
          'Package load = loadProtectedModel with the local keyring: read, signature and digests, decrypt in memory, plaintext digests (model and bundle), ONNX Runtime session; with detectors it also parses the bundle JSON. Five loads of each per round after a warm-up pair, alternating which package loads first.',
        ],
        ratios: CASES.map((c) => ({
          label: `${c.label}: package load with detectors / without`,
          of: `${c.id}.load_with`,
          to: `${c.id}.load_without`,
        })),
      };
    } finally {
      await kr.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

export default bench;
