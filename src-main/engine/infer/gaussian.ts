/**
 * Extra head beyond the paper: how far an image lies from the training normals' distribution.
 *
 * One Gaussian over the same image vectors as the kNN head (L2-normalised global average pool
 * of the level-0 map), score = Mahalanobis distance to its mean (Rippel et al., "Modeling the
 * distribution of normal data in pre-trained deep features for anomaly detection", 2020).
 * Where kNN asks "is there one normal like this image?", this asks "does the image move along
 * directions in which normals do not vary?": a defect of a kind nobody labelled often does.
 * Measured with npm run bench, 3 seeds, AUC-ROC of the distance alone (shrinkage 0.01):
 * ELPV hard 10-shot 0.905, general 10-shot 0.904 (kNN: 0.879, 0.883); HeadCT general 10-shot
 * 0.879 (kNN: 0.895), where 75 normals cannot estimate a 768 x 768 covariance: hence
 * GAUSSIAN_MIN_NORMALS_PER_DIM.
 *
 * Covariance: S = C + lambda I, C the sample covariance, lambda = shrink * trace(C) / dim, so
 * S is invertible for any n. Score: |L^-1 (x - mu)| with S = L L^T (the whitening L^-1 is what
 * the state keeps). Calibration: exact leave-one-out distances of the training normals (lambda
 * held at its full-data value), from one more Cholesky factor and Sherman-Morrison; no refits.
 */
import * as tf from '@tensorflow/tfjs';
import { CholeskyDecomposition, Matrix } from 'ml-matrix';
import { lowerInverse } from '../util/triangular';
import type { ImageFeatures } from '../types';
import { EngineError } from '../types';
import type { GaussianState, HeadStats } from '../heads/state';
import { pooledVector, stats } from './knn';

/**
 * Shrinkage towards the mean variance. Measured as (1 - a) C + a trace(C) / dim I, which ranks
 * like shrink = a / (1 - a), on ELPV hard 10-shot (distance alone, 3 seeds) for a = 0.01 /
 * 0.1 / 0.5: 0.905 / 0.902 / 0.895.
 */
export const GAUSSIAN_SHRINK = 0.01;

/**
 * The head is fitted only with at least this many training normals per feature channel: with
 * fewer, most directions of the covariance are the shrinkage target, and the measured head
 * (HeadCT, 75 normals, 768 channels) lowers the total (0.955 to 0.949 at weight 1).
 */
export const GAUSSIAN_MIN_NORMALS_PER_DIM = 1;

/** Whether the head is fitted for this many normals of this dimension. */
export function gaussianApplies(normalCount: number, dim: number): boolean {
  return normalCount >= 3 && normalCount >= GAUSSIAN_MIN_NORMALS_PER_DIM * dim;
}

export interface GaussianFit {
  state: GaussianState;
  /** Mean and spread of the normals' leave-one-out distances. */
  calibration: HeadStats;
}

/** Squared norm of each row of X W^T (W row-major [dim, dim]): |W x|^2 per row of X. */
function whitenedSquares(
  x: Float32Array,
  rows: number,
  w: Float32Array | Float64Array,
  dim: number,
): Float32Array {
  return tf.tidy(() => {
    // An explicit transpose: a transposed operand makes matMul much slower on wasm.
    const wt = tf.transpose(tf.tensor2d(Float32Array.from(w), [dim, dim]));
    const z = tf.matMul(tf.tensor2d(x, [rows, dim]), wt);
    return tf.sum(tf.square(z), 1).dataSync() as Float32Array;
  });
}

function cholesky(m: Matrix): Matrix {
  const chol = new CholeskyDecomposition(m);
  if (!chol.isPositiveDefinite()) {
    throw new EngineError('The Gaussian head could not be fitted (the covariance is not positive definite).');
  }
  return chol.lowerTriangularMatrix;
}

/**
 * Fits the Gaussian on the training normals. Call only when gaussianApplies to them, or to
 * `projectNormals`: a cross-validation fold fits it on part of a project's normals whenever
 * the project's model has one, so that its evidence is about the heads the model has.
 */
export function fitGaussianHead(
  normals: readonly ImageFeatures[],
  shrink = GAUSSIAN_SHRINK,
  projectNormals = normals.length,
): GaussianFit {
  const n = normals.length;
  const vecs = normals.map((f) => pooledVector(f.levels[0]));
  const dim = vecs[0]?.length ?? 0;
  if (n < 3 || !gaussianApplies(Math.max(n, projectNormals), dim)) {
    throw new EngineError(`The Gaussian head needs at least ${Math.max(3, dim)} normal images, got ${n}.`);
  }
  if (vecs.some((v) => v.length !== dim || !v.every(Number.isFinite))) {
    throw new EngineError('The Gaussian head got feature vectors of differing length or non-finite values.');
  }
  const mean = new Float32Array(dim);
  const mean64 = new Float64Array(dim);
  for (const v of vecs) for (let k = 0; k < dim; k++) mean64[k] += v[k] / n;
  mean.set(mean64);
  const centred = new Float32Array(n * dim);
  vecs.forEach((v, i) => {
    for (let k = 0; k < dim; k++) centred[i * dim + k] = v[k] - mean64[k];
  });
  // Scatter matrix on the fast backend; the factorisations in double precision.
  const scatter = tf.tidy(() => {
    const xc = tf.tensor2d(centred, [n, dim]);
    return tf.matMul(tf.transpose(xc), xc).dataSync() as Float32Array;
  });
  let trace = 0;
  for (let k = 0; k < dim; k++) trace += scatter[k * dim + k];
  const lambda = (shrink * trace) / (n - 1) / dim + 1e-12;
  const shrunk = (denominator: number): Matrix => {
    const m = new Matrix(dim, dim);
    for (let i = 0; i < dim; i++)
      for (let j = 0; j < dim; j++) m.set(i, j, scatter[i * dim + j] / denominator + (i === j ? lambda : 0));
    return m;
  };
  const whiten = lowerInverse(cholesky(shrunk(n - 1)));

  // Leave-one-out: without image i, S_-i = B - c xi xi^T with B = scatter / (n - 2) + lambda I,
  // c = n / ((n - 1)(n - 2)), xi centred on the full mean; image i lies n / (n - 1) xi from
  // the mean of the others. Sherman-Morrison: that distance^2 = (n / (n - 1))^2 q / (1 - c q),
  // q = xi^T B^-1 xi.
  const q = whitenedSquares(centred, n, lowerInverse(cholesky(shrunk(n - 2))), dim);
  const c = n / ((n - 1) * (n - 2));
  const ratio = (n / (n - 1)) ** 2;
  const loo = Array.from(q, (qi) => Math.sqrt((ratio * qi) / Math.max(1e-12, 1 - c * qi)));
  return {
    state: { dim, count: n, shrink, mean, whiten: Float32Array.from(whiten) },
    calibration: stats(loo),
  };
}

/** Mahalanobis distances of the query images (higher: further from the normals). */
export function gaussianScores(state: GaussianState, feats: readonly ImageFeatures[]): Float32Array {
  const { dim } = state;
  const x = new Float32Array(feats.length * dim);
  feats.forEach((f, i) => {
    const v = pooledVector(f.levels[0]);
    if (v.length !== dim) {
      throw new EngineError(
        `The Gaussian head expects ${dim} feature channels, the features give ${v.length}.`,
      );
    }
    for (let k = 0; k < dim; k++) x[i * dim + k] = v[k] - state.mean[k];
  });
  if (feats.length === 0) return new Float32Array(0);
  return whitenedSquares(x, feats.length, state.whiten, dim).map(Math.sqrt);
}
