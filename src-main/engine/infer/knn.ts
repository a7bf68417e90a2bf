/**
 * Extra head beyond the paper: distance to the nearest training normal.
 *
 * Image level: the level-0 feature map is global-average-pooled and L2-normalised; the score
 * is the Euclidean distance to the closest training normal (sqrt(2 - 2 cos)). A query that
 * is itself a training normal (distance ~0 to a bank entry) is scored leave-one-out, like
 * the calibration, so training images get honest scores in the review queue.
 * Patch level (optional): each level-0 patch's distance to the nearest patch of any other
 * training normal; image score = top-K mean of the patch distances, the map joins the heatmap.
 */
import * as tf from '@tensorflow/tfjs';
import type { FeatureMap, ImageFeatures } from '../types';
import type { HeadStats, KnnState } from '../heads/state';
import { topKCount, topKMean } from '../heads/topk';

const SELF_MATCH_SQ = 1e-10;

function l2normalise(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
  for (let i = 0; i < v.length; i++) v[i] *= inv;
  return v;
}

/** L2-normalised global average pool of one map. */
export function pooledVector(m: FeatureMap): Float32Array {
  const v = new Float32Array(m.c);
  const p = m.h * m.w;
  for (let i = 0; i < p; i++) for (let k = 0; k < m.c; k++) v[k] += m.data[i * m.c + k];
  for (let k = 0; k < m.c; k++) v[k] /= p;
  return l2normalise(v);
}

export function buildKnn(normals: readonly ImageFeatures[], withPatches: boolean): KnnState {
  const first = normals[0].levels[0];
  const dim = first.c;
  const bank = new Float32Array(normals.length * dim);
  normals.forEach((n, i) => bank.set(pooledVector(n.levels[0]), i * dim));
  const knn: KnnState = { dim, count: normals.length, bank };
  if (withPatches) {
    const ppi = first.h * first.w;
    const pbank = new Float32Array(normals.length * ppi * dim);
    normals.forEach((n, i) => {
      const d = n.levels[0].data;
      for (let p = 0; p < ppi; p++) {
        pbank.set(l2normalise(d.slice(p * dim, (p + 1) * dim)), (i * ppi + p) * dim);
      }
    });
    knn.patch = { patchesPerImage: ppi, h: first.h, w: first.w, bank: pbank };
  }
  return knn;
}

function sqDist(a: Float32Array, bank: Float32Array, j: number, dim: number): number {
  let s = 0;
  const o = j * dim;
  for (let k = 0; k < dim; k++) {
    const d = a[k] - bank[o + k];
    s += d * d;
  }
  return s;
}

/**
 * One pass over the bank: the first entry equal to q (the query is a training normal; -1 if
 * none) and the distance to the nearest entry other than that one. Each distance is computed
 * once, exactly as two separate passes would.
 */
function selfAndNearest(knn: KnnState, q: Float32Array): { self: number; distance: number } {
  let self = -1;
  let best = Infinity;
  for (let j = 0; j < knn.count; j++) {
    const d = sqDist(q, knn.bank, j, knn.dim);
    if (self < 0 && d < SELF_MATCH_SQ) self = j;
    else if (d < best) best = d;
  }
  return { self, distance: Number.isFinite(best) ? Math.sqrt(best) : 0 };
}

function nearestExcluding(knn: KnnState, q: Float32Array, exclude: number): number {
  let best = Infinity;
  for (let j = 0; j < knn.count; j++) {
    if (j === exclude) continue;
    const d = sqDist(q, knn.bank, j, knn.dim);
    if (d < best) best = d;
  }
  return Number.isFinite(best) ? Math.sqrt(best) : 0;
}

export interface KnnScores {
  /** Image-level distance per query. */
  image: Float32Array;
  /** Patch-level: top-K mean per query and the level-0 distance maps [N, h*w]. */
  patch?: { score: Float32Array; maps: Float32Array; h: number; w: number };
}

/** Patch distances of queries to the patch bank, excluding one bank image per query. */
function patchDistances(
  knn: KnnState,
  queries: readonly FeatureMap[],
  exclude: readonly number[],
  topKRatio: number,
): NonNullable<KnnScores['patch']> {
  const pk = knn.patch!;
  const ppi = pk.patchesPerImage;
  const dim = knn.dim;
  const nBank = knn.count * ppi;
  const maps = new Float32Array(queries.length * ppi);
  const bankT = tf.tidy(() => tf.transpose(tf.tensor2d(pk.bank, [nBank, dim])));
  try {
    // Chunks keep the similarity matrix around 4M values.
    const chunk = Math.max(1, Math.floor(4_000_000 / (ppi * nBank)));
    for (let s = 0; s < queries.length; s += chunk) {
      const part = queries.slice(s, s + chunk);
      const q = new Float32Array(part.length * ppi * dim);
      part.forEach((m, i) => {
        for (let p = 0; p < ppi; p++)
          q.set(l2normalise(m.data.slice(p * dim, (p + 1) * dim)), (i * ppi + p) * dim);
      });
      const sims = tf.tidy(
        () => tf.matMul(tf.tensor2d(q, [part.length * ppi, dim]), bankT).dataSync() as Float32Array,
      );
      part.forEach((_, i) => {
        const ex = exclude[s + i];
        for (let p = 0; p < ppi; p++) {
          const row = (i * ppi + p) * nBank;
          let best = -Infinity;
          // Whole bank images at a time, skipping the excluded one without a per-entry test.
          for (let img = 0; img < knn.count; img++) {
            if (img === ex) continue;
            const end = row + (img + 1) * ppi;
            for (let j = row + img * ppi; j < end; j++) if (sims[j] > best) best = sims[j];
          }
          maps[(s + i) * ppi + p] = Number.isFinite(best) ? Math.sqrt(Math.max(0, 2 - 2 * best)) : 0;
        }
      });
    }
  } finally {
    bankT.dispose();
  }
  const score = topKMean(maps, queries.length, ppi, topKCount(topKRatio, ppi));
  return { score, maps, h: pk.h, w: pk.w };
}

/** kNN distances of query images (leave-one-out when a query is a training normal). */
export function knnScores(knn: KnnState, feats: readonly ImageFeatures[], topKRatio: number): KnnScores {
  const image = new Float32Array(feats.length);
  const exclude: number[] = [];
  feats.forEach((f, i) => {
    const q = pooledVector(f.levels[0]);
    const { self, distance } = selfAndNearest(knn, q);
    exclude.push(self);
    image[i] = distance;
  });
  const out: KnnScores = { image };
  if (knn.patch)
    out.patch = patchDistances(
      knn,
      feats.map((f) => f.levels[0]),
      exclude,
      topKRatio,
    );
  return out;
}

/** Leave-one-out distances of the training normals themselves (bank entry i against the others). */
export function knnLeaveOneOut(
  knn: KnnState,
  normals: readonly ImageFeatures[],
  topKRatio: number,
): KnnScores {
  const image = new Float32Array(knn.count);
  for (let i = 0; i < knn.count; i++) {
    image[i] = nearestExcluding(knn, knn.bank.subarray(i * knn.dim, (i + 1) * knn.dim), i);
  }
  const out: KnnScores = { image };
  if (knn.patch) {
    out.patch = patchDistances(
      knn,
      normals.map((f) => f.levels[0]),
      normals.map((_, i) => i),
      topKRatio,
    );
  }
  return out;
}

/** Mean and standard deviation (floored so a z-score never divides by ~0). */
export function stats(values: ArrayLike<number>): HeadStats {
  const n = values.length;
  if (n < 2) return { mean: n === 1 ? values[0] : 0, std: 1 };
  let s = 0;
  for (let i = 0; i < n; i++) s += values[i];
  const mean = s / n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (values[i] - mean) ** 2;
  const std = Math.sqrt(v / (n - 1));
  return { mean, std: Math.max(std, 1e-6 + 1e-3 * Math.abs(mean)) };
}

/** Unsupervised baseline: image-level kNN distance of each query to the given normals (no training). */
export function knnBaselineScores(
  normals: readonly ImageFeatures[],
  queries: readonly ImageFeatures[],
): number[] {
  if (normals.length === 0) return queries.map(() => 0);
  return Array.from(knnScores(buildKnn(normals, false), queries, 0.1).image);
}
