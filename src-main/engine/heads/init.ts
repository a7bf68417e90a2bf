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
  /** Hidden units of the seen and pseudo heads' per-patch MLP (0: the paper's 1x1 conv). */
  patchHidden?: number;
}

/** PyTorch's default for conv/linear layers: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
function uniform(rng: Rng, n: number, fanIn: number): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.uniform(-bound, bound);
  return out;
}

/** Zeroes the off-block entries of a [2*hidden, 2] matrix: column 0 reads rows 0..hidden-1 only. */
export function blockDiagonal(m: Float32Array, hidden: number): Float32Array {
  for (let r = 0; r < 2 * hidden; r++) m[r * 2 + (r < hidden ? 1 : 0)] = 0;
  return m;
}

export function initWeights(shape: HeadShape, rng: Rng): DraWeights {
  const { channels: c, reduceTo, width, hidden } = shape;
  const convIn = reduceTo > 0 ? reduceTo : c;
  const ph = shape.patchHidden ?? 0;
  const patch: DraWeights['patch'] =
    ph > 0
      ? {
          w: uniform(rng, c * 2 * ph, c),
          b: uniform(rng, 2 * ph, c),
          hidden: ph,
          out: blockDiagonal(uniform(rng, 2 * ph * 2, ph), ph),
          outB: uniform(rng, 2, ph),
        }
      : { w: uniform(rng, c * 2, c), b: uniform(rng, 2, c) };
  return {
    channels: c,
    patch,
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
