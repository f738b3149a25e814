import type { Network } from '../../src/ml/network.js';

/**
 * The network's function in float64, written here from its definition (dense layers, the activation
 * formulas of activations.ts, the preprocessing) and the network's own parameters (float32 values,
 * exact in float64): central differences of it are free of the float32 rounding of `forward`, so the
 * step can be small (1e-5: truncation error O(h²) and rounding O(1e-16 / h), both below 1e-9).
 */
export function reference64(net: Network, x: ArrayLike<number>, rows: number): Float64Array[] {
  const t = net.tempered;
  const act = (v: number): number => {
    switch (net.activation) {
      case 'relu':
        return Math.max(v, 0);
      case 'tanh':
        return Math.tanh(v);
      case 'sigmoid':
        return 1 / (1 + Math.exp(-v));
      case 'tempered-sigmoid':
        return t.scale / (1 + Math.exp(-t.inverseTemperature * v)) - t.offset;
      case 'identity':
        return v;
    }
  };
  const d = net.inputs;
  const a0 = Float64Array.from(x);
  const p = net.preprocessing;
  if (p !== null) {
    for (let i = 0; i < a0.length; i++) {
      const j = i % d;
      a0[i] = p.kind === 'sub-div' ? (a0[i]! - p.sub[j]!) / p.div[j]! : a0[i]! * p.mul[j]! + p.add[j]!;
    }
  }
  const acts = [a0];
  for (let l = 0; l < net.layerCount; l++) {
    const fanIn = net.sizes[l]!;
    const fanOut = net.sizes[l + 1]!;
    const w = net.weights(l);
    const b = net.bias(l);
    const prev = acts[l]!;
    const out = new Float64Array(rows * fanOut);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < fanOut; o++) {
        let s = b[o]!;
        for (let i = 0; i < fanIn; i++) s += prev[r * fanIn + i]! * w[i * fanOut + o]!;
        out[r * fanOut + o] = l + 1 < net.layerCount ? act(s) : s;
      }
    }
    acts.push(out);
  }
  return acts;
}
