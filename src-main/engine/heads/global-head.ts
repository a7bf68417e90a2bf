/**
 * Extra head beyond the paper: a whole-image classifier of the labelled defects against the
 * training normals.
 *
 * Why: DRA's heads score the K most anomalous patches. A defect that shifts the statistics of
 * the whole image (a hemorrhage's density across a CT slice) moves every patch a little and
 * none much; a linear read-out of the image's pooled statistics sees it. Measured with npm run
 * bench, 3 seeds, AUC-ROC of this head alone: HeadCT general 10-shot 0.974, ELPV general
 * 10-shot 0.833, ELPV hard 10-shot 0.765 (DRA's seen head: 0.849, 0.798, 0.612).
 *
 * Input: the extractor's ImageFeatures.pooled (per channel mean and standard deviation of
 * conv_pw_11 by default, then the input's luminance histogram, features/luma-histogram.ts),
 * else the mean and standard deviation of the level-0 feature map (2c values); standardised
 * with the training images' statistics. Model: class-balanced ridge regression to
 * targets 1 (defect) / 0 (normal), solved in closed form in the dual (an n x n system, n the
 * training images), so training is deterministic and quick. Its exact leave-one-out predictions
 * give the calibration on normals (what an unseen normal scores) without refitting.
 */
import * as tf from '@tensorflow/tfjs';
import { CholeskyDecomposition, Matrix } from 'ml-matrix';
import { inverseDiagonal } from '../util/triangular';
import type { FeatureMap, ImageFeatures } from '../types';
import { EngineError } from '../types';
import type { HeadStats } from './state';

export interface GlobalHeadState {
  /**
   * What the head reads: 'pooled', the extractor's statistics of an earlier layer
   * (ImageFeatures.pooled); 'level0', the same statistics of the level-0 feature map.
   */
  source: 'pooled' | 'level0';
  /** Length of the pooled vector (2c). */
  dim: number;
  /** Standardisation: x' = (x - mean) / scale. */
  mean: Float32Array;
  scale: Float32Array;
  w: Float32Array;
  b: number;
  /** Labelled defects it was fitted on (absent in models from before: weight factor 1). */
  defects?: number;
}

/**
 * Penalty per training image. Measured (conv_pw_11 statistics, 3 seeds, AUC-ROC of the head
 * alone for 0.03 / 0.1 / 0.3 / 1): HeadCT general 10-shot 0.964 / 0.965 / 0.965 / 0.961,
 * ELPV hard 10-shot 0.769 / 0.768 / 0.755 / 0.723, ELPV general 10-shot 0.826 / 0.836 /
 * 0.845 / 0.850. The unseen-defect rows (hard) weigh most.
 */
export const GLOBAL_RIDGE = 0.1;

/**
 * Normals the head fits on, at most: the n x n solve grows as n^3 (about 1 s for 1,024 on
 * this 2-core machine). Larger sets are thinned evenly (deterministic, seed-free).
 */
export const GLOBAL_MAX_NORMALS = 1024;

/** Labelled defects beyond which the global head's weight stops growing. */
export const GLOBAL_EVIDENCE_CAP = 10;

/**
 * Factor on the head's weight in the total: the square root of the labelled defects it was
 * fitted on, at most GLOBAL_EVIDENCE_CAP. Why: the noise in a direction estimated from n
 * examples shrinks like 1 / sqrt(n), so one defect gives a guess and ten a classifier; past the
 * cap the factor stays, so that the unsupervised heads keep their say for defect kinds nobody
 * labelled.
 */
export function globalEvidence(state: Pick<GlobalHeadState, 'defects'>): number {
  return state.defects === undefined
    ? 1
    : Math.sqrt(Math.min(Math.max(state.defects, 1), GLOBAL_EVIDENCE_CAP));
}

/** Per channel mean, then per channel standard deviation, of one map. */
export function pooledStats(m: FeatureMap): Float32Array {
  const { c } = m;
  const p = m.h * m.w;
  const v = new Float32Array(2 * c);
  for (let i = 0; i < p; i++) for (let k = 0; k < c; k++) v[k] += m.data[i * c + k];
  for (let k = 0; k < c; k++) v[k] /= p;
  for (let i = 0; i < p; i++)
    for (let k = 0; k < c; k++) {
      const d = m.data[i * c + k] - v[k];
      v[c + k] += d * d;
    }
  for (let k = 0; k < c; k++) v[c + k] = Math.sqrt(v[c + k] / p);
  return v;
}

function inputOf(f: ImageFeatures, source: GlobalHeadState['source']): Float32Array {
  if (source === 'level0') return pooledStats(f.levels[0]);
  if (!f.pooled) {
    throw new EngineError(
      'The global head reads pooled statistics of an earlier backbone layer, which these features lack (extract them again).',
    );
  }
  return f.pooled;
}

export interface GlobalHeadFit {
  state: GlobalHeadState;
  /** Calibration: mean/std of the normals' leave-one-out scores. */
  calibration: HeadStats;
}

/**
 * Fits the head. Needs at least one defect and two normals. `ridge` scales the penalty
 * (default GLOBAL_RIDGE).
 */
export function fitGlobalHead(
  allNormals: readonly ImageFeatures[],
  anomalies: readonly ImageFeatures[],
  ridge = GLOBAL_RIDGE,
): GlobalHeadFit {
  if (anomalies.length === 0 || allNormals.length < 2) {
    throw new EngineError('The global head needs at least one labelled defect and two normal images.');
  }
  const step = Math.max(1, allNormals.length / GLOBAL_MAX_NORMALS);
  const normals =
    step > 1
      ? Array.from({ length: GLOBAL_MAX_NORMALS }, (_, i) => allNormals[Math.floor(i * step)])
      : allNormals;
  const all = [...normals, ...anomalies];
  const source = all.every((f) => f.pooled) ? 'pooled' : 'level0';
  const raw = all.map((f) => inputOf(f, source));
  const dim = raw[0].length;
  // One NaN would turn every weight into NaN; a length mismatch means mixed extractors.
  if (raw.some((r) => r.length !== dim || !r.every(Number.isFinite))) {
    throw new EngineError('The global head got pooled statistics of differing length or non-finite values.');
  }
  const n = raw.length;
  const nN = normals.length;
  const target = raw.map((_, i) => (i < nN ? 0 : 1));
  // Class-balanced weights, mean 1: a handful of defects weighs as much as all the normals.
  const weight = target.map((t) => (t ? n / (2 * anomalies.length) : n / (2 * nN)));

  const mean = new Float32Array(dim);
  const scale = new Float32Array(dim);
  for (const r of raw) for (let k = 0; k < dim; k++) mean[k] += r[k] / n;
  for (const r of raw) for (let k = 0; k < dim; k++) scale[k] += (r[k] - mean[k]) ** 2 / n;
  for (let k = 0; k < dim; k++) scale[k] = Math.sqrt(scale[k]) + 1e-6;

  const xs = raw.map((r) => r.map((v, k) => (v - mean[k]) / scale[k]));
  // The weighted data term grows with n (weights average 1): so does the penalty, which keeps
  // the same `ridge` right for 85 images and for 1,000.
  const fit = weightedRidge(xs, target, weight, ridge * n);
  const loo = fit.loo.slice(0, nN);
  const m = loo.reduce((a, v) => a + v, 0) / nN;
  const sd = Math.sqrt(loo.reduce((a, v) => a + (v - m) ** 2, 0) / nN);
  return {
    state: { source, dim, mean, scale, w: fit.w, b: fit.b, defects: anomalies.length },
    calibration: { mean: m, std: sd > 1e-12 ? sd : 1 },
  };
}

export interface RidgeFit {
  w: Float32Array;
  b: number;
  /** Leave-one-out prediction of every training row. */
  loo: number[];
}

/**
 * Minimises sum_i weight_i (t_i - b - x_i.w)^2 + lambda |w|^2 (the intercept b unpenalised),
 * in the dual: an n x n system, n the rows. Leave-one-out predictions are exact, from the hat
 * matrix: t_i - (t_i - f(x_i)) / (1 - H_ii), with H_ii = weight_i / sum(weight) (intercept)
 * + 1 - lambda [(G + lambda I)^-1]_ii (G the Gram matrix of the weighted, centred rows).
 */
export function weightedRidge(
  xs: readonly Float32Array[],
  target: readonly number[],
  weight: readonly number[],
  lambda: number,
): RidgeFit {
  const n = xs.length;
  const dim = xs[0].length;
  const wSum = weight.reduce((a, b) => a + b, 0);
  // Weighted centring takes the intercept out of the penalty.
  const xBar = new Float64Array(dim);
  xs.forEach((x, i) => {
    for (let k = 0; k < dim; k++) xBar[k] += (weight[i] * x[k]) / wSum;
  });
  const tBar = target.reduce((a, t, i) => a + weight[i] * t, 0) / wSum;
  const zFlat = new Float32Array(n * dim);
  xs.forEach((x, i) => {
    const s = Math.sqrt(weight[i]);
    for (let k = 0; k < dim; k++) zFlat[i * dim + k] = s * (x[k] - xBar[k]);
  });
  const u = target.map((t, i) => Math.sqrt(weight[i]) * (t - tBar));

  // Gram matrix on the fast backend; the n x n solve in double precision.
  const gram = tf.tidy(() => {
    const zt = tf.tensor2d(zFlat, [n, dim]);
    return tf.matMul(zt, zt, false, true).dataSync() as Float32Array;
  });
  const g = new Matrix(n, n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) g.set(i, j, gram[i * n + j] + (i === j ? lambda : 0));
  const chol = new CholeskyDecomposition(g);
  if (!chol.isPositiveDefinite())
    throw new EngineError('The global head could not be fitted (singular system).');
  const alpha = chol.solve(Matrix.columnVector(u)).to1DArray();
  const invDiag = inverseDiagonal(chol.lowerTriangularMatrix);

  const w = new Float32Array(dim);
  const wd = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let k = 0; k < dim; k++) wd[k] += zFlat[i * dim + k] * alpha[i];
  let b = tBar;
  for (let k = 0; k < dim; k++) {
    w[k] = wd[k];
    b -= xBar[k] * wd[k];
  }
  const loo = xs.map((x, i) => {
    let f = b;
    for (let k = 0; k < dim; k++) f += x[k] * wd[k];
    const leverage = weight[i] / wSum + 1 - lambda * invDiag[i];
    return target[i] - (target[i] - f) / Math.max(1e-9, 1 - leverage);
  });
  return { w, b, loo };
}

/** Raw scores (higher: more like the labelled defects). */
export function globalScores(state: GlobalHeadState, feats: readonly ImageFeatures[]): Float32Array {
  const out = new Float32Array(feats.length);
  feats.forEach((f, i) => {
    // A model from before the histogram was appended reads the layer statistics, the prefix.
    const v = inputOf(f, state.source);
    if (v.length < state.dim || (state.source === 'level0' && v.length !== state.dim)) {
      throw new EngineError(`Global head expects ${state.dim} pooled values, the features give ${v.length}.`);
    }
    let s = state.b;
    for (let k = 0; k < state.dim; k++) s += ((v[k] - state.mean[k]) / state.scale[k]) * state.w[k];
    out[i] = s;
  });
  return out;
}
