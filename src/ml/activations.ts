import { requireFinite, requirePositive } from '../core/index.js';
import { sigmoid } from './kernels.js';

/**
 * Hidden-layer activations. `tempered-sigmoid` is the family of Papernot, Thakurta, Song, Chien &
 * Erlingsson, "Tempered Sigmoid Activations for Deep Learning with Differential Privacy" (AAAI 2021):
 * phi(x) = s * sigmoid(T * x) - o, bounded so that DP-SGD clips less signal away; s = 2, T = 2, o = 1
 * is tanh.
 */
export type ActivationName = 'relu' | 'tanh' | 'sigmoid' | 'tempered-sigmoid' | 'identity';

export const ACTIVATIONS: readonly ActivationName[] = [
  'relu',
  'tanh',
  'sigmoid',
  'tempered-sigmoid',
  'identity',
];

/** Parameters of the tempered sigmoid s * sigmoid(T x) - o. */
export interface TemperedSigmoid {
  scale: number;
  inverseTemperature: number;
  offset: number;
}

export const DEFAULT_TEMPERED: TemperedSigmoid = { scale: 2, inverseTemperature: 2, offset: 1 };

export function checkTempered(t: TemperedSigmoid): TemperedSigmoid {
  requirePositive('temperedSigmoid.scale', t.scale);
  requirePositive('temperedSigmoid.inverseTemperature', t.inverseTemperature);
  requireFinite('temperedSigmoid.offset', t.offset);
  return { scale: t.scale, inverseTemperature: t.inverseTemperature, offset: t.offset };
}

/** Applies the activation in place to `z`. */
export function activate(name: ActivationName, z: Float32Array, t: TemperedSigmoid = DEFAULT_TEMPERED): void {
  switch (name) {
    case 'relu':
      for (let i = 0; i < z.length; i++) if ((z[i] as number) < 0) z[i] = 0;
      return;
    case 'tanh':
      for (let i = 0; i < z.length; i++) z[i] = Math.tanh(z[i] as number);
      return;
    case 'sigmoid':
      for (let i = 0; i < z.length; i++) z[i] = sigmoid(z[i] as number);
      return;
    case 'tempered-sigmoid': {
      const { scale: s, inverseTemperature: T, offset: o } = t;
      for (let i = 0; i < z.length; i++) z[i] = s * sigmoid(T * (z[i] as number)) - o;
      return;
    }
    case 'identity':
      return;
  }
}

/**
 * Multiplies `delta` in place by the activation's derivative, written in terms of the activation's
 * OUTPUT `a` (so the pre-activations need not be kept): relu' = [a > 0], tanh' = 1 - a^2,
 * sigmoid' = a (1 - a), tempered' = s T u (1 - u) with u = (a + o) / s.
 */
export function activationBackward(
  name: ActivationName,
  a: Float32Array,
  delta: Float32Array,
  t: TemperedSigmoid = DEFAULT_TEMPERED,
): void {
  switch (name) {
    case 'relu':
      for (let i = 0; i < a.length; i++) if ((a[i] as number) <= 0) delta[i] = 0;
      return;
    case 'tanh':
      for (let i = 0; i < a.length; i++) {
        const v = a[i] as number;
        delta[i] = (delta[i] as number) * (1 - v * v);
      }
      return;
    case 'sigmoid':
      for (let i = 0; i < a.length; i++) {
        const v = a[i] as number;
        delta[i] = (delta[i] as number) * v * (1 - v);
      }
      return;
    case 'tempered-sigmoid': {
      const { scale: s, inverseTemperature: T, offset: o } = t;
      for (let i = 0; i < a.length; i++) {
        const u = ((a[i] as number) + o) / s;
        delta[i] = (delta[i] as number) * s * T * u * (1 - u);
      }
      return;
    }
    case 'identity':
      return;
  }
}
