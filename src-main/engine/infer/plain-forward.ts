/**
 * The heads' scoring forward (BatchNorm with its running statistics) on plain arrays: the
 * products on a MatMulFn (onnxruntime's GEMM where installed: TF.js wasm's matMul costs
 * several times its CPU here), everything else in loops, instead of forwardLevel's few
 * dozen small kernels per batch. The same arithmetic as forwardLevel in eval mode (a test
 * compares them), for the heads the written-out training step trains: the paper's 1x1 patch
 * heads with the residual reduction. Written as a generator of its products so that one
 * body serves the synchronous callers (TF.js's matMul) and the asynchronous ones.
 */
import type { DraWeights } from '../heads/state';
import { BN_EPS } from '../heads/forward';
import type { FeatureMap, ImageFeatures } from '../types';
import { averagePool } from '../train/batch';
import { im2col, neighbours, type StepBuffers } from '../train/fast-step';
import { tfjsMatMulSync, type MatMulArgs, type MatMulFn } from '../train/matmul-runtime';

/** A computation that yields the products it needs (as MatMulFn takes them) and is resumed with each result. */
export type Products<T> = Generator<MatMulArgs, T, Float32Array>;

/** Runs it with TF.js's synchronous matMul. */
export function runSync<T>(g: Products<T>): T {
  let step = g.next();
  while (!step.done) step = g.next(tfjsMatMulSync(...step.value));
  return step.value;
}

/** Runs it with `matMul` (onnxruntime's or TF.js's). */
export async function runAsync<T>(g: Products<T>, matMul: MatMulFn): Promise<T> {
  let step = g.next();
  while (!step.done) step = g.next(await matMul(...step.value));
  return step.value;
}

export function plainForwardApplies(w: DraWeights): boolean {
  return (w.patch.hidden ?? 0) === 0 && w.residual.reduceTo > 0;
}

/** One pyramid level's head outputs for a batch: patch maps [b, p] (after |.|) and normality [b]. */
export interface PlainLevel {
  seen: Float32Array;
  pseudo: Float32Array;
  residual: Float32Array;
  normality: Float32Array;
}

/** [c, 2 + reduceTo]: seen, pseudo, then the reduction, as HeadTensors.inW. */
const readOuts = new WeakMap<DraWeights, Float32Array>();
function readOut(w: DraWeights): Float32Array {
  let m = readOuts.get(w);
  if (m) return m;
  const { channels: c } = w;
  const r = w.residual.reduceTo;
  const cols = 2 + r;
  m = new Float32Array(c * cols);
  for (let i = 0; i < c; i++) {
    m[i * cols] = w.patch.w[i * 2];
    m[i * cols + 1] = w.patch.w[i * 2 + 1];
    for (let j = 0; j < r; j++) m[i * cols + 2 + j] = w.residual.reduce[i * r + j];
  }
  readOuts.set(w, m);
  return m;
}

export function* plainLevel(
  w: DraWeights,
  batch: readonly ImageFeatures[],
  level: number,
  ref: FeatureMap,
  /** One per scoring call (the products are awaited: calls may interleave); im2col keeps its zeros in it. */
  scratch: StepBuffers,
): Products<PlainLevel> {
  const { h, w: wd, c } = ref;
  const p = h * wd;
  const b = batch.length;
  const n = b * p;
  const res = w.residual;
  const r = res.reduceTo;
  const cols = 2 + r;
  const W = res.width;

  // One product reads every image's patches and the reference map: [images; M_r] @ inW.
  const X = scratch.get('X', (n + p) * c, false);
  batch.forEach((f, i) => X.set(f.levels[level].data, i * p * c));
  X.set(ref.data, n * c);
  const Y = yield [X, n + p, c, readOut(w), cols];

  const seen = new Float32Array(n);
  const pseudo = new Float32Array(n);
  const R = scratch.get('R', n * r, false);
  const [b0, b1] = w.patch.b;
  for (let j = 0; j < n; j++) {
    const y0 = j * cols;
    seen[j] = Math.abs(Y[y0] + b0);
    pseudo[j] = Math.abs(Y[y0 + 1] + b1);
    const ref0 = (n + (j % p)) * cols + 2;
    for (let ch = 0; ch < r; ch++) R[j * r + ch] = Y[ref0 + ch] - Y[y0 + 2 + ch];
  }

  const K9 = 9 * r;
  const im = scratch.keep('im', n * K9);
  im2col(R, neighbours(h, wd), b, p, r, im, 0);
  const Z = yield [im, n, K9, res.conv, W];
  const shift = new Float64Array(W);
  const scale = new Float64Array(W);
  for (let ch = 0; ch < W; ch++) {
    scale[ch] = 1 / Math.sqrt(res.runVar[ch] + BN_EPS);
    shift[ch] = res.convB[ch] - res.runMean[ch];
  }
  const residual = new Float32Array(n);
  const outB = res.outB[0];
  for (let j = 0; j < n; j++) {
    const o = j * W;
    let s = outB;
    for (let ch = 0; ch < W; ch++) {
      const y = (Z[o + ch] + shift[ch]) * scale[ch] * res.gamma[ch] + res.beta[ch];
      if (y > 0) s += y * res.out[ch];
    }
    residual[j] = Math.abs(s);
  }

  const nm = w.normality;
  const H = nm.hidden;
  const gap = new Float32Array(b * c);
  batch.forEach((f, i) => gap.set(averagePool(f.levels[level]), i * c));
  const G = yield [gap, b, c, nm.w1, H];
  const normality = new Float32Array(b);
  for (let i = 0; i < b; i++) {
    let s = nm.b2[0];
    for (let j = 0; j < H; j++) {
      const v = G[i * H + j] + nm.b1[j];
      if (v > 0) s += v * nm.w2[j];
    }
    normality[i] = Math.abs(s);
  }
  return { seen, pseudo, residual, normality };
}
