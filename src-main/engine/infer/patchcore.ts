/**
 * PatchCore (Roth et al., CVPR 2022), unsupervised: locally aware patch features of two
 * backbone layers, a memory bank of the training normals' patches reduced by greedy k-center
 * coreset selection, image score = the largest distance of a patch to its nearest bank patch,
 * heatmap = those per-patch distances.
 *
 * - Patch features: each layer averaged over a 3x3 neighbourhood (the cells inside the map),
 *   coarser layers bilinearly upsampled to the first layer's grid, channels concatenated.
 * - Coreset: a Gaussian random projection (projectionDim) serves only the distances inside
 *   the greedy selection; the bank keeps the full features, unless embedDim projects the
 *   patch features themselves (bank and queries alike), which bounds the cost of scoring.
 * - candidateMax: the greedy selection runs on at most that many training patches (a seeded
 *   sample), which bounds the cost of fitting on large projects.
 * - The bank records each patch's source image (PatchCoreModel.source), so that a training
 *   normal can be scored leave-one-out (its own patches skipped), like the kNN head's.
 * - Distances: |q|^2 + |b|^2 - 2 q.b. patchCoreScores computes the products in loops (TF.js
 *   wasm's matMul is slow on the wide [patches, bank] output); patchCoreScoresAsync as one
 *   product per block of queries on matmul-runtime.ts (onnxruntime's GEMM when installed).
 */
import * as tf from '@tensorflow/tfjs';
import { EngineError, type FeatureMap } from '../types';
import { Rng } from '../util/rng';
import { headMatMul, type MatMulFn } from '../train/matmul-runtime';

export interface PatchCoreOptions {
  /** Share of the training patches kept in the bank (the paper: 0.1, or 0.01). */
  coresetRatio: number;
  /** Upper bound on the bank size, for the CPU budget of scoring (0: none). */
  coresetMax: number;
  /** Dimension of the random projection inside the greedy selection (the paper: 128). */
  projectionDim: number;
  /** Dimension the patch features are projected to for the bank and the queries (0: kept whole). */
  embedDim: number;
  /** Training patches the selection runs on, at most (0: all). */
  candidateMax: number;
  seed: number;
}

export const PATCHCORE_DEFAULTS: PatchCoreOptions = {
  coresetRatio: 0.1,
  coresetMax: 2048,
  projectionDim: 128,
  embedDim: 0,
  candidateMax: 0,
  seed: 0,
};

export interface PatchCoreModel {
  /** Dimension of the bank's patches (embedDim, or the input's). */
  dim: number;
  /** Row-major [input dim, dim] when the features are projected (embedDim). */
  projection?: Float32Array;
  count: number;
  /** Bank patches, row-major [count, dim]. */
  bank: Float32Array;
  /** Patch grid of an image. */
  h: number;
  w: number;
  /** Training patches the bank was selected from. */
  from: number;
  /** Per bank patch, the index of the training image it came from. */
  source: Float32Array;
}

export interface PatchCoreScores {
  /** Per query: the largest nearest-neighbour distance over its patches. */
  score: Float32Array;
  /** Per query, row-major [N, h*w]: each patch's distance to its nearest bank patch. */
  maps: Float32Array;
  h: number;
  w: number;
}

/** Mean over the 3x3 neighbourhood of every cell, counting only cells inside the map. */
export function localAverage(m: FeatureMap): FeatureMap {
  const { h, w, c, data } = m;
  const out = new Float32Array(h * w * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * c;
      let n = 0;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= w) continue;
          const i = (yy * w + xx) * c;
          for (let k = 0; k < c; k++) out[o + k] += data[i + k];
          n++;
        }
      }
      const inv = 1 / n;
      for (let k = 0; k < c; k++) out[o + k] *= inv;
    }
  }
  return { h, w, c, data: out };
}

/** Bilinear resize of a map to h x w (cell centres aligned, like align_corners = false). */
export function resizeMap(m: FeatureMap, h: number, w: number): FeatureMap {
  if (m.h === h && m.w === w) return m;
  const { c, data } = m;
  const out = new Float32Array(h * w * c);
  const coord = (i: number, n: number, src: number) =>
    Math.min(Math.max(((i + 0.5) * src) / n - 0.5, 0), src - 1);
  for (let y = 0; y < h; y++) {
    const v = coord(y, h, m.h);
    const y0 = Math.floor(v);
    const y1 = Math.min(y0 + 1, m.h - 1);
    const fy = v - y0;
    for (let x = 0; x < w; x++) {
      const u = coord(x, w, m.w);
      const x0 = Math.floor(u);
      const x1 = Math.min(x0 + 1, m.w - 1);
      const fx = u - x0;
      const a = (y0 * m.w + x0) * c;
      const b = (y0 * m.w + x1) * c;
      const d = (y1 * m.w + x0) * c;
      const e = (y1 * m.w + x1) * c;
      const o = (y * w + x) * c;
      for (let k = 0; k < c; k++) {
        out[o + k] =
          (data[a + k] * (1 - fx) + data[b + k] * fx) * (1 - fy) +
          (data[d + k] * (1 - fx) + data[e + k] * fx) * fy;
      }
    }
  }
  return { h, w, c, data: out };
}

/** PatchCore's patch features of one image from its layer maps (finest first). */
export function patchEmbedding(layers: readonly FeatureMap[]): FeatureMap {
  if (layers.length === 0) throw new EngineError('PatchCore needs at least one feature layer.');
  const { h, w } = layers[0];
  const parts = layers.map((m) => resizeMap(localAverage(m), h, w));
  const c = parts.reduce((s, p) => s + p.c, 0);
  const out = new Float32Array(h * w * c);
  for (let p = 0; p < h * w; p++) {
    let at = p * c;
    for (const m of parts) {
      out.set(m.data.subarray(p * m.c, (p + 1) * m.c), at);
      at += m.c;
    }
  }
  return { h, w, c, data: out };
}

/** Rows of points [n, dim] times a [dim, k] matrix, in blocks of rows. */
export function project(points: Float32Array, n: number, dim: number, matrix: tf.Tensor2D): Float32Array {
  const k = matrix.shape[1];
  const out = new Float32Array(n * k);
  const block = Math.max(1, Math.floor(4_000_000 / dim));
  for (let s = 0; s < n; s += block) {
    const m = Math.min(block, n - s);
    const part = tf.tidy(
      () =>
        tf
          .matMul(tf.tensor2d(points.subarray(s * dim, (s + m) * dim), [m, dim]), matrix)
          .dataSync() as Float32Array,
    );
    out.set(part, s * k);
  }
  return out;
}

/**
 * Greedy k-center selection (the paper's Algorithm 1): start from a random point, then
 * repeatedly add the point farthest from everything chosen, distances in a random projection.
 */
export function greedyCoreset(
  points: Float32Array,
  n: number,
  dim: number,
  k: number,
  projectionDim: number,
  rng: Rng,
): Int32Array {
  if (k >= n) return Int32Array.from({ length: n }, (_, i) => i);
  const pd = Math.min(projectionDim, dim);
  let reduced: Float32Array;
  if (pd < dim) {
    const r = new Float32Array(dim * pd);
    const scale = 1 / Math.sqrt(pd);
    for (let i = 0; i < r.length; i++) r[i] = rng.normal() * scale;
    const matrix = tf.tensor2d(r, [dim, pd]);
    try {
      reduced = project(points, n, dim, matrix);
    } finally {
      matrix.dispose();
    }
  } else {
    reduced = points;
  }
  const minD = new Float32Array(n).fill(Infinity);
  const chosen = new Int32Array(k);
  // The newest centre as doubles (the same values): two points at a time share its loads. Each
  // distance is summed in the same order as one point at a time, so the selection is the same.
  const c = new Float64Array(pd);
  const even = pd - (pd % 2);
  let last = rng.int(n);
  for (let j = 0; j < k; j++) {
    chosen[j] = last;
    for (let t = 0; t < pd; t++) c[t] = reduced[last * pd + t];
    let best = -1;
    let arg = 0;
    for (let i = 0; i < n; i += 2) {
      const two = i + 1 < n;
      const p = i * pd;
      const q = two ? p + pd : p;
      let s = 0;
      let u = 0;
      for (let t = 0; t < even; t += 2) {
        const c0 = c[t];
        const c1 = c[t + 1];
        const a0 = reduced[p + t] - c0;
        const a1 = reduced[p + t + 1] - c1;
        const b0 = reduced[q + t] - c0;
        const b1 = reduced[q + t + 1] - c1;
        s += a0 * a0;
        s += a1 * a1;
        u += b0 * b0;
        u += b1 * b1;
      }
      if (even < pd) {
        const a = reduced[p + even] - c[even];
        const b = reduced[q + even] - c[even];
        s += a * a;
        u += b * b;
      }
      const m = s < minD[i] ? (minD[i] = s) : minD[i];
      if (m > best) {
        best = m;
        arg = i;
      }
      if (two) {
        const m2 = u < minD[i + 1] ? (minD[i + 1] = u) : minD[i + 1];
        if (m2 > best) {
          best = m2;
          arg = i + 1;
        }
      }
    }
    last = arg;
  }
  return chosen;
}

/** A Gaussian random projection [dim, k], entries N(0, 1/k). */
function randomProjection(dim: number, k: number, rng: Rng): Float32Array {
  const r = new Float32Array(dim * k);
  const scale = 1 / Math.sqrt(k);
  for (let i = 0; i < r.length; i++) r[i] = rng.normal() * scale;
  return r;
}

/** One embedded map's patches, projected when the model says so. */
function patchesOf(
  m: FeatureMap,
  inDim: number,
  projection: Float32Array | undefined,
  dim: number,
): Float32Array {
  if (!projection) return m.data;
  const matrix = tf.tensor2d(projection, [inDim, dim]);
  try {
    return project(m.data, m.h * m.w, inDim, matrix);
  } finally {
    matrix.dispose();
  }
}

/** The memory bank of the training normals' patch features (each an embedded map). */
export function fitPatchCore(
  normals: readonly FeatureMap[],
  opts: Partial<PatchCoreOptions> = {},
): PatchCoreModel {
  const o = { ...PATCHCORE_DEFAULTS, ...opts };
  if (normals.length === 0) throw new EngineError('PatchCore needs at least one normal image.');
  const { h, w, c } = normals[0];
  const ppi = h * w;
  for (const m of normals) {
    if (m.h !== h || m.w !== w || m.c !== c)
      throw new EngineError(
        `PatchCore: patch maps differ in shape (${m.h}x${m.w}x${m.c}, expected ${h}x${w}x${c}).`,
      );
  }
  const rng = new Rng(o.seed);
  const dim = o.embedDim > 0 && o.embedDim < c ? o.embedDim : c;
  const projection = dim < c ? randomProjection(c, dim, rng) : undefined;
  const total = normals.length * ppi;
  // The candidates: every patch, or a seeded sample of candidateMax of them (in input order).
  let pick: Int32Array | null = null;
  if (o.candidateMax > 0 && total > o.candidateMax) {
    const order = rng.shuffle(Array.from({ length: total }, (_, i) => i));
    pick = Int32Array.from(order.slice(0, o.candidateMax)).sort();
  }
  const n = pick ? pick.length : total;
  const all = new Float32Array(n * dim);
  const from = new Float32Array(n);
  let at = 0;
  normals.forEach((m, i) => {
    const patches = patchesOf(m, c, projection, dim);
    for (let p = 0; p < ppi; p++) {
      const g = i * ppi + p;
      if (pick && pick[at] !== g) continue;
      all.set(patches.subarray(p * dim, (p + 1) * dim), at * dim);
      from[at] = i;
      at++;
      if (at === n) break;
    }
  });
  let k = Math.max(1, Math.round(total * o.coresetRatio));
  if (o.coresetMax > 0) k = Math.min(k, o.coresetMax);
  const idx = greedyCoreset(all, n, dim, k, o.projectionDim, rng);
  const bank = new Float32Array(idx.length * dim);
  const source = new Float32Array(idx.length);
  idx.forEach((p, j) => {
    bank.set(all.subarray(p * dim, (p + 1) * dim), j * dim);
    source[j] = from[p];
  });
  return { dim, ...(projection ? { projection } : {}), count: idx.length, bank, h, w, from: total, source };
}

/** a[ao..ao+dim) . b[bo..bo+dim), four partial sums (about 1.6x faster in V8 than one). */
function dotAt(a: Float32Array, ao: number, b: Float32Array, bo: number, dim: number): number {
  let d0 = 0;
  let d1 = 0;
  let d2 = 0;
  let d3 = 0;
  const end = dim - (dim % 4);
  for (let t = 0; t < end; t += 4) {
    d0 += a[ao + t] * b[bo + t];
    d1 += a[ao + t + 1] * b[bo + t + 1];
    d2 += a[ao + t + 2] * b[bo + t + 2];
    d3 += a[ao + t + 3] * b[bo + t + 3];
  }
  for (let t = end; t < dim; t++) d0 += a[ao + t] * b[bo + t];
  return d0 + d1 + d2 + d3;
}

/** Each bank patch's squared norm, and the bank transposed ([dim, count]) for the products. */
const bankCache = new WeakMap<PatchCoreModel, { norm: Float32Array; transposed?: Float32Array }>();

function bankOf(
  model: PatchCoreModel,
  transposed: boolean,
): { norm: Float32Array; transposed?: Float32Array } {
  const { dim, count, bank } = model;
  let c = bankCache.get(model);
  if (!c) {
    const norm = new Float32Array(count);
    for (let j = 0; j < count; j++) {
      let s = 0;
      for (let t = 0; t < dim; t++) s += bank[j * dim + t] ** 2;
      norm[j] = s;
    }
    c = { norm };
    bankCache.set(model, c);
  }
  if (transposed && !c.transposed) {
    const tr = new Float32Array(dim * count);
    for (let j = 0; j < count; j++) for (let t = 0; t < dim; t++) tr[t * count + j] = bank[j * dim + t];
    c.transposed = tr;
  }
  return c;
}

/** A query map's patches in the bank's space, after checking its shape. */
function queryPatches(model: PatchCoreModel, m: FeatureMap): Float32Array {
  const { dim, h, w } = model;
  const inDim = model.projection ? model.projection.length / dim : dim;
  if (m.h !== h || m.w !== w || m.c !== inDim)
    throw new EngineError(`PatchCore: query map ${m.h}x${m.w}x${m.c}, the bank's is ${h}x${w}x${inDim}.`);
  return patchesOf(m, inDim, model.projection, dim);
}

/** Distance from the squared norm of a patch and its least |b|^2 - 2 q.b (0 when every bank patch was excluded). */
function distance(qn: number, best: number): number {
  return Number.isFinite(best) ? Math.sqrt(Math.max(0, best + qn)) : 0;
}

/**
 * Nearest-bank-patch distance of every patch of the queries (embedded maps); `exclude[i]`, when
 * given and not -1, is the training image whose patches query i may not match (leave-one-out).
 */
export function patchCoreScores(
  model: PatchCoreModel,
  queries: readonly FeatureMap[],
  exclude?: readonly number[],
): PatchCoreScores {
  const { dim, count, h, w, source } = model;
  const ppi = h * w;
  const maps = new Float32Array(queries.length * ppi);
  const score = new Float32Array(queries.length);
  const bankNorm = bankOf(model, false).norm;
  const bank = model.bank;
  queries.forEach((m, i) => {
    const q = queryPatches(model, m);
    const self = exclude?.[i] ?? -1;
    let top = 0;
    for (let p = 0; p < ppi; p++) {
      const qo = p * dim;
      let qn = 0;
      for (let t = 0; t < dim; t++) qn += q[qo + t] * q[qo + t];
      let best = Infinity;
      for (let j = 0, bo = 0; j < count; j++, bo += dim) {
        if (source[j] === self) continue;
        const d2 = bankNorm[j] - 2 * dotAt(q, qo, bank, bo, dim);
        if (d2 < best) best = d2;
      }
      const d = distance(qn, best);
      maps[i * ppi + p] = d;
      if (d > top) top = d;
    }
    score[i] = top;
  });
  return { score, maps, h, w };
}

/** Entries of a block's [patches, bank] product, at most (about 32 MB). */
const BLOCK_ENTRIES = 8_000_000;

/**
 * patchCoreScores with q.b for a block of queries' patches against the whole bank as one
 * matrix product on `matMul` (default: matmul-runtime.ts's runtime): the same distances up to
 * float rounding, at the speed of a native GEMM.
 */
export async function patchCoreScoresAsync(
  model: PatchCoreModel,
  queries: readonly FeatureMap[],
  exclude?: readonly number[],
  matMul?: MatMulFn,
  blockEntries = BLOCK_ENTRIES,
): Promise<PatchCoreScores> {
  const { dim, count, h, w, source } = model;
  const ppi = h * w;
  const maps = new Float32Array(queries.length * ppi);
  const score = new Float32Array(queries.length);
  const { norm: bankNorm, transposed: bankT } = bankOf(model, true);
  const product = matMul ?? (await headMatMul()).matMul;
  const per = Math.max(1, Math.floor(blockEntries / (ppi * count)));
  const q = new Float32Array(Math.min(per, queries.length) * ppi * dim);
  const dots = new Float32Array(Math.min(per, queries.length) * ppi * count);
  for (let s = 0; s < queries.length; s += per) {
    const n = Math.min(per, queries.length - s);
    for (let i = 0; i < n; i++) q.set(queryPatches(model, queries[s + i]), i * ppi * dim);
    const rows = n * ppi;
    await product(q.subarray(0, rows * dim), rows, dim, bankT!, count, dots.subarray(0, rows * count));
    for (let i = 0; i < n; i++) {
      const self = exclude?.[s + i] ?? -1;
      let top = 0;
      for (let p = 0; p < ppi; p++) {
        const r = i * ppi + p;
        let qn = 0;
        for (let t = r * dim, e = t + dim; t < e; t++) qn += q[t] * q[t];
        let best = Infinity;
        for (let j = 0, o = r * count; j < count; j++, o++) {
          if (source[j] === self) continue;
          const d2 = bankNorm[j] - 2 * dots[o];
          if (d2 < best) best = d2;
        }
        const d = distance(qn, best);
        maps[(s + i) * ppi + p] = d;
        if (d > top) top = d;
      }
      score[s + i] = top;
    }
  }
  return { score, maps, h, w };
}
