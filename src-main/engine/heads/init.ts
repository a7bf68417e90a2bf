/**
 * Seeded initial weights. TF.js initialisers draw from their own global generator, so the
 * weights are drawn here from Rng to make the same seed give the same model.
 */
import type { Rng } from '../util/rng';
import type { DraWeights } from './state';

export interface HeadShape {
  channels: number;
  reduceTo: number;
  width: number;
  hidden: number;
}

/** PyTorch's default for conv/linear layers: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
function uniform(rng: Rng, n: number, fanIn: number): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.uniform(-bound, bound);
  return out;
}

export function initWeights(shape: HeadShape, rng: Rng): DraWeights {
  const { channels: c, reduceTo, width, hidden } = shape;
  const convIn = reduceTo > 0 ? reduceTo : c;
  return {
    channels: c,
    patch: { w: uniform(rng, c * 2, c), b: uniform(rng, 2, c) },
    residual: {
      reduceTo,
      reduce: reduceTo > 0 ? uniform(rng, c * reduceTo, c) : new Float32Array(0),
      width,
      conv: uniform(rng, 9 * convIn * width, 9 * convIn),
      convB: uniform(rng, width, 9 * convIn),
      gamma: new Float32Array(width).fill(1),
      beta: new Float32Array(width),
      runMean: new Float32Array(width),
      runVar: new Float32Array(width).fill(1),
      out: uniform(rng, width, width),
      outB: uniform(rng, 1, width),
    },
    normality: {
      hidden,
      w1: uniform(rng, c * hidden, c),
      b1: uniform(rng, hidden, c),
      w2: uniform(rng, hidden, hidden),
      b2: uniform(rng, 1, hidden),
    },
  };
}
