/**
 * First-order optimisers over one flat parameter vector: SGD with (optionally Nesterov) momentum
 * (Polyak 1964; Sutskever et al., ICML 2013) and Adam (Kingma & Ba, ICLR 2015, Algorithm 1 with the
 * bias corrections folded into the step size as in section 2).
 */
import { invalidArgument, requireNumberIn, requirePositive } from '../core/index.js';
import { type WasmAdam, wasmAdam } from './wasm/gemm-wasm.js';

export interface Optimizer {
  /** Updates `params` in place from `grad` (same length). */
  step(params: Float32Array, grad: Float32Array): void;
  /** The learning rate (mutable for schedules). */
  learningRate: number;
}

export interface SgdOptions {
  learningRate: number;
  /** Momentum coefficient in [0, 1) (default 0.9). */
  momentum?: number;
  nesterov?: boolean;
}

export class Sgd implements Optimizer {
  learningRate: number;
  readonly momentum: number;
  readonly nesterov: boolean;
  #v: Float32Array | null = null;

  constructor(o: SgdOptions) {
    this.learningRate = requirePositive('learningRate', o.learningRate);
    this.momentum = requireNumberIn('momentum', o.momentum ?? 0.9, 0, 1, { maxExclusive: true });
    this.nesterov = o.nesterov ?? false;
  }

  step(params: Float32Array, grad: Float32Array): void {
    if (grad.length !== params.length) throw invalidArgument('grad', `length ${params.length}`, grad.length);
    const lr = this.learningRate;
    const mu = this.momentum;
    if (mu === 0) {
      for (let i = 0; i < params.length; i++) params[i] = (params[i] as number) - lr * (grad[i] as number);
      return;
    }
    if (this.#v === null || this.#v.length !== params.length) this.#v = new Float32Array(params.length);
    const v = this.#v;
    for (let i = 0; i < params.length; i++) {
      const g = grad[i] as number;
      const vi = mu * (v[i] as number) + g;
      v[i] = vi;
      params[i] = (params[i] as number) - lr * (this.nesterov ? g + mu * vi : vi);
    }
  }
}

export interface AdamOptions {
  learningRate?: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
}

export class Adam implements Optimizer {
  learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  #m: Float32Array | null = null;
  #v: Float32Array | null = null;
  #t = 0;
  #simd: WasmAdam | null = null;

  constructor(o: AdamOptions = {}) {
    this.learningRate = requirePositive('learningRate', o.learningRate ?? 1e-3);
    this.beta1 = requireNumberIn('beta1', o.beta1 ?? 0.9, 0, 1, { maxExclusive: true });
    this.beta2 = requireNumberIn('beta2', o.beta2 ?? 0.999, 0, 1, { maxExclusive: true });
    this.epsilon = requirePositive('epsilon', o.epsilon ?? 1e-8);
  }

  step(params: Float32Array, grad: Float32Array): void {
    if (grad.length !== params.length) throw invalidArgument('grad', `length ${params.length}`, grad.length);
    if (this.#m === null || this.#m.length !== params.length) {
      this.#m = new Float32Array(params.length);
      this.#v = new Float32Array(params.length);
      this.#t = 0;
      // Large vectors go to the WebAssembly SIMD update (4 lanes, moments kept in its memory).
      this.#simd = params.length >= 1024 ? wasmAdam(params.length) : null;
    }
    const m = this.#m;
    const v = this.#v as Float32Array;
    this.#t++;
    const b1 = this.beta1;
    const b2 = this.beta2;
    const bc1 = 1 - b1 ** this.#t;
    const bc2 = 1 - b2 ** this.#t;
    // PyTorch's formulation: p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
    const stepSize = this.learningRate / bc1;
    const sqrtBc2 = Math.sqrt(bc2);
    const eps = this.epsilon;
    if (this.#simd !== null) {
      this.#simd.step(params, grad, b1, b2, stepSize, 1 / sqrtBc2, eps);
      return;
    }
    for (let i = 0; i < params.length; i++) {
      const g = grad[i] as number;
      const mi = b1 * (m[i] as number) + (1 - b1) * g;
      const vi = b2 * (v[i] as number) + (1 - b2) * g * g;
      m[i] = mi;
      v[i] = vi;
      params[i] = (params[i] as number) - (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + eps);
    }
  }
}

export type OptimizerName = 'sgd' | 'adam';
