/**
 * One fast-mode training step of the four DRA heads with the backward pass written out: the
 * large products (the 1x1 read-out of the feature maps, the residual head's 3x3 conv as a row
 * gather (im2col) times the kernel, the normality head's first layer, and their gradients) are
 * plain matMuls (matmul-runtime.ts: onnxruntime's GEMM, which also does the gathers, else
 * TF.js), everything else (BatchNorm, top-K, the losses, Adam) loops over Float32Arrays. The same arithmetic as forwardLevel + tf.variableGrads (a test compares
 * the gradients), without the tape's hundreds of small kernels, transposes and shift matrices
 * per step.
 *
 * Two exact shortcuts: every map drawn more than once in a step (anomalies drawn with
 * repetition, reference images) is multiplied once; and the dihedral transforms permute
 * patches, which commutes with the 1x1 read-out, so they are applied to its output (64
 * channels) rather than to the 768-channel input.
 *
 * Applies to the paper's 1x1 patch heads with the residual reduction (patchHidden 0,
 * residualReduce > 0): other settings train through the tape (train-fast.ts).
 */
import type { HeadName, ImageFeatures, LossKind, TrainSettings } from '../types';
import type { Rng } from '../util/rng';
import type { DraWeights } from '../heads/state';
import { BN_EPS } from '../heads/forward';
import { topKCount, topKMask } from '../heads/topk';
import { averagePool, featuresOf, type FastTrainData } from './batch';
import { DEVIATION_MARGIN, priorStats, routeLabels, type DraHead } from './losses';
import type { BatchPlan } from './sampler';
import { cachedPermutation } from './transforms';
import { tfjsGathered, tfjsMatMul, type HeadMatMul } from './matmul-runtime';

/** The products a step needs: a @ b, and where the runtime has it, a^T @ b without a transposed copy. */
export type StepMatMul = Pick<HeadMatMul, 'matMul' | 'matMulTA' | 'gathered'>;

/** Whether the written-out step covers these settings. */
export function fastStepApplies(s: TrainSettings): boolean {
  return (s.patchHidden ?? 0) === 0 && (s.residualReduce ?? 64) > 0;
}

/** The trainable weights as flat arrays, in the layouts of DraWeights (inW as in HeadTensors). */
export interface StepParams {
  /** [c, 2 + reduceTo]: seen, pseudo, then the reduction's columns. */
  inW: Float32Array;
  patchB: Float32Array;
  conv: Float32Array;
  convB: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  out: Float32Array;
  outB: Float32Array;
  w1: Float32Array;
  b1: Float32Array;
  w2: Float32Array;
  b2: Float32Array;
}
export type ParamName = keyof StepParams;
export const PARAM_NAMES: readonly ParamName[] = [
  'inW',
  'patchB',
  'conv',
  'convB',
  'gamma',
  'beta',
  'out',
  'outB',
  'w1',
  'b1',
  'w2',
  'b2',
];

/** Which heads' losses reach each parameter (a parameter no contributing head reaches gets no gradient). */
const PARAM_HEADS: Record<ParamName, readonly DraHead[]> = {
  inW: ['seen', 'pseudo', 'residual'],
  patchB: ['seen', 'pseudo'],
  conv: ['residual'],
  convB: ['residual'],
  gamma: ['residual'],
  beta: ['residual'],
  out: ['residual'],
  outB: ['residual'],
  w1: ['normality'],
  b1: ['normality'],
  w2: ['normality'],
  b2: ['normality'],
};

export function stepParams(w: DraWeights): StepParams {
  const c = w.channels;
  const r = w.residual;
  const cols = 2 + r.reduceTo;
  const inW = new Float32Array(c * cols);
  for (let i = 0; i < c; i++) {
    inW[i * cols] = w.patch.w[i * 2];
    inW[i * cols + 1] = w.patch.w[i * 2 + 1];
    for (let j = 0; j < r.reduceTo; j++) inW[i * cols + 2 + j] = r.reduce[i * r.reduceTo + j];
  }
  const n = w.normality;
  const copy = (a: Float32Array) => Float32Array.from(a);
  return {
    inW,
    patchB: copy(w.patch.b),
    conv: copy(r.conv),
    convB: copy(r.convB),
    gamma: copy(r.gamma),
    beta: copy(r.beta),
    out: copy(r.out),
    outB: copy(r.outB),
    w1: copy(n.w1),
    b1: copy(n.b1),
    w2: copy(n.w2),
    b2: copy(n.b2),
  };
}

/** Plain weights from step parameters; running BatchNorm statistics come from `base`. */
export function weightsFromParams(p: StepParams, base: DraWeights): DraWeights {
  const c = base.channels;
  const rt = base.residual.reduceTo;
  const cols = 2 + rt;
  const patchW = new Float32Array(c * 2);
  const reduce = new Float32Array(c * rt);
  for (let i = 0; i < c; i++) {
    patchW[i * 2] = p.inW[i * cols];
    patchW[i * 2 + 1] = p.inW[i * cols + 1];
    for (let j = 0; j < rt; j++) reduce[i * rt + j] = p.inW[i * cols + 2 + j];
  }
  const copy = (a: Float32Array) => Float32Array.from(a);
  return {
    channels: c,
    patch: { w: patchW, b: copy(p.patchB) },
    residual: {
      ...base.residual,
      reduce,
      conv: copy(p.conv),
      convB: copy(p.convB),
      gamma: copy(p.gamma),
      beta: copy(p.beta),
      runMean: copy(base.residual.runMean),
      runVar: copy(base.residual.runVar),
      out: copy(p.out),
      outB: copy(p.outB),
    },
    normality: {
      hidden: base.normality.hidden,
      w1: copy(p.w1),
      b1: copy(p.b1),
      w2: copy(p.w2),
      b2: copy(p.b2),
    },
  };
}

/**
 * Scratch arrays reused from step to step: a step needs ~30 MB of them, and allocating that
 * afresh each step costs more than the arithmetic (page faults and garbage collection).
 */
export class StepBuffers {
  private readonly buffers = new Map<string, Float32Array>();

  /** An array of `size` values (zeroed unless the caller overwrites all of it), valid until the next call with the same name. */
  get(name: string, size: number, zero = true): Float32Array {
    let b = this.buffers.get(name);
    if (!b || b.length < size) {
      b = new Float32Array(size);
      this.buffers.set(name, b);
      return b;
    }
    const view = b.subarray(0, size);
    if (zero) view.fill(0);
    return view;
  }

  private readonly kept = new Map<string, Float32Array>();

  /**
   * An array of exactly `size` values that keeps what was written to it since the last call
   * with the same name and size (zero when new): im2col writes only the in-bounds blocks.
   */
  keep(name: string, size: number): Float32Array {
    let b = this.kept.get(name);
    if (!b || b.length !== size) {
      b = new Float32Array(size);
      this.kept.set(name, b);
    }
    return b;
  }

  private readonly transposes = new Map<Float32Array, Float32Array>();
  private transposedBytes = 0;

  /**
   * A map [pl, c] transposed to [c, pl], kept for the rest of the run (a map is drawn again and
   * again) while the copies stay under TRANSPOSE_BUDGET bytes; null beyond it.
   */
  transposed(d: Float32Array, pl: number, c: number): Float32Array | null {
    let t = this.transposes.get(d);
    if (t) return t;
    if (this.transposedBytes + d.byteLength > TRANSPOSE_BUDGET) return null;
    t = new Float32Array(d.length);
    for (let k = 0; k < c; k++) for (let q = 0; q < pl; q++) t[k * pl + q] = d[q * c + k];
    this.transposes.set(d, t);
    this.transposedBytes += d.byteLength;
    return t;
  }
}

/** Bytes of transposed maps a training run keeps (a few hundred images' worth). */
const TRANSPOSE_BUDGET = 256 * 2 ** 20;

/** d loss / d score of one sample, and its loss (dra.md's deviation loss, or BCE / focal on the score as a logit). */
function lossAndGrad(
  kind: LossKind,
  s: number,
  y: number,
  prior: { mean: number; std: number },
): [number, number] {
  if (kind === 'deviation') {
    const dev = (s - prior.mean) / prior.std;
    // TF.js's gradients: |x|' = 1 for x > 0 else -1; relu'(x) = 1 for x > 0 else 0.
    const inlier = Math.abs(dev);
    const gap = DEVIATION_MARGIN - dev;
    const loss = (1 - y) * inlier + y * Math.max(0, gap);
    const g = ((1 - y) * (dev > 0 ? 1 : -1) - y * (gap > 0 ? 1 : 0)) / prior.std;
    return [loss, g];
  }
  const bce = Math.max(s, 0) - s * y + Math.log1p(Math.exp(-Math.abs(s)));
  const dBce = 1 / (1 + Math.exp(-s)) - y;
  if (kind === 'bce') return [bce, dBce];
  const pt = Math.exp(-bce);
  const gamma = 2;
  return [(1 - pt) ** gamma * bce, dBce * ((1 - pt) ** gamma + gamma * (1 - pt) ** (gamma - 1) * pt * bce)];
}

export interface StepResult {
  losses: Partial<Record<HeadName, number>>;
  /** Gradient of the total loss per parameter; absent where no contributing head reaches it. */
  grads: Partial<StepParams>;
  /** Per level: BatchNorm batch statistics of the residual conv (biased variance) and their count. */
  bn: { mean: Float32Array; variance: Float32Array; count: number }[];
}

interface LevelShape {
  h: number;
  w: number;
  c: number;
}

/*
 * Kernels: the loops of a step, each in a small function of typed arrays and numbers, so
 * that V8 compiles them early and keeps them compiled (one large function of all of them ran
 * interpreted for whole steps, allocating a number per element).
 */

const neighbourCache = new Map<string, Int32Array>();

/** For each patch of an h x w map and each 3x3 offset (im2col column order dy, dx): the neighbour's index, or -1 outside. */
export function neighbours(h: number, w: number): Int32Array {
  const key = `${h}x${w}`;
  const cached = neighbourCache.get(key);
  if (cached) return cached;
  const nb = new Int32Array(h * w * 9);
  neighbourCache.set(key, nb);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let k = 0; k < 9; k++) {
        const sy = y + Math.floor(k / 3) - 1;
        const sx = x + (k % 3) - 1;
        nb[(y * w + x) * 9 + k] = sy >= 0 && sy < h && sx >= 0 && sx < w ? sy * w + sx : -1;
      }
    }
  }
  return nb;
}

/** One map's rows into X [rows, c] at row0, and its columns into XT [c, rows] (from its transpose T when given). */
function packMapT(
  d: Float32Array,
  T: Float32Array | null,
  X: Float32Array,
  XT: Float32Array,
  row0: number,
  rows: number,
  pl: number,
  c: number,
): void {
  X.set(d, row0 * c);
  if (T) {
    for (let k = 0; k < c; k++) {
      const o = k * rows + row0;
      const s = k * pl;
      for (let q = 0; q < pl; q++) XT[o + q] = T[s + q];
    }
    return;
  }
  for (let k = 0; k < c; k++) {
    const o = k * rows + row0;
    for (let q = 0; q < pl; q++) XT[o + q] = d[q * c + k];
  }
}

/**
 * One level: the reduced reference map M_r (mean of the references' transformed read-outs),
 * the patch heads' pre-|.| scores [B*P, 2] and the residual R [B*P, r] = reduce(M_r) - reduce(M_x).
 * itemSrc / refSrc: the row of Y behind each (sample, patch), transform applied.
 */
function levelInputs(
  Y: Float32Array,
  cols: number,
  r: number,
  pl: number,
  itemSrc: Int32Array,
  refSrc: Int32Array,
  patchB: Float32Array,
  refRed: Float64Array,
  pre: Float32Array,
  R: Float32Array,
): void {
  refRed.fill(0);
  const nRef = refSrc.length / pl;
  for (let j = 0; j < refSrc.length; j++) {
    const q = j % pl;
    const y0 = refSrc[j] * cols + 2;
    for (let ch = 0; ch < r; ch++) refRed[q * r + ch] += Y[y0 + ch];
  }
  for (let j = 0; j < refRed.length; j++) refRed[j] /= nRef;
  const b0 = patchB[0];
  const b1 = patchB[1];
  for (let j = 0; j < itemSrc.length; j++) {
    const q = j % pl;
    const y0 = itemSrc[j] * cols;
    pre[j * 2] = Y[y0] + b0;
    pre[j * 2 + 1] = Y[y0 + 1] + b1;
    for (let ch = 0; ch < r; ch++) R[j * r + ch] = refRed[q * r + ch] - Y[y0 + 2 + ch];
  }
}

/**
 * a [m, n] transposed into columns o0.. of out [n, stride] (stride m and o0 0: the plain
 * transpose), in 16 x 16 tiles so that neither side strides through memory a value at a time.
 */
function transpose(
  a: Float32Array,
  m: number,
  n: number,
  out: Float32Array,
  stride = m,
  o0 = 0,
): Float32Array {
  const T = 16;
  for (let i0 = 0; i0 < m; i0 += T) {
    const i1 = Math.min(m, i0 + T);
    for (let j0 = 0; j0 < n; j0 += T) {
      const j1 = Math.min(n, j0 + T);
      for (let j = j0; j < j1; j++) {
        const o = j * stride + o0;
        for (let i = i0; i < i1; i++) out[o + i] = a[i * n + j];
      }
    }
  }
  return out;
}

/** The conv's weight gradient [9r, W] from G = R^T dZs [r, 9W] (block k of G's columns is offset k). */
function regroupConvGrad(G: Float32Array, r: number, W: number, out: Float32Array): Float32Array {
  const KW = 9 * W;
  for (let k = 0; k < 9; k++)
    for (let ch = 0; ch < r; ch++) {
      const o = (k * r + ch) * W;
      const g = ch * KW + k * W;
      for (let co = 0; co < W; co++) out[o + co] = G[g + co];
    }
  return out;
}

/** conv [9r, W] regrouped as [9W, r] (row k*W + co holds conv[k*r + ., co]), the right factor of dR = dZs @ it. */
function regroupConvForDR(conv: Float32Array, r: number, W: number, out: Float32Array): Float32Array {
  for (let k = 0; k < 9; k++)
    for (let co = 0; co < W; co++) {
      const o = (k * W + co) * r;
      for (let ch = 0; ch < r; ch++) out[o + ch] = conv[(k * r + ch) * W + co];
    }
  return out;
}

/** d loss / d patch-head column `col` of Y, from the patch gradient g [B*P] through |.|, into dYT; returns its sum (d patchB). */
function scatterPatchGrad(
  g: Float64Array,
  pre: Float32Array,
  col: number,
  src: Int32Array,
  dYT: Float32Array,
  o: number,
): number {
  let sum = 0;
  for (let j = 0; j < g.length; j++) {
    if (g[j] === 0) continue;
    const v = g[j] * sgn(pre[j * 2 + col]);
    dYT[o + src[j]] += v;
    sum += v;
  }
  return sum;
}

/** len values of src from s0 to dst at d0, four at a time. */
function copyRow(src: Float32Array, s0: number, dst: Float32Array, d0: number, len: number): void {
  let j = 0;
  for (; j + 4 <= len; j += 4) {
    dst[d0 + j] = src[s0 + j];
    dst[d0 + j + 1] = src[s0 + j + 1];
    dst[d0 + j + 2] = src[s0 + j + 2];
    dst[d0 + j + 3] = src[s0 + j + 3];
  }
  for (; j < len; j++) dst[d0 + j] = src[s0 + j];
}

/** im2col of R [B*P, r] into rows m0.. of im [rows, 9r] (block k = the offset-k neighbour; out-of-bounds blocks are left as they are: zero in a StepBuffers.keep array). */
export function im2col(
  R: Float32Array,
  nb: Int32Array,
  B: number,
  pl: number,
  r: number,
  im: Float32Array,
  m0: number,
): void {
  const K9 = 9 * r;
  for (let i = 0; i < B; i++) {
    for (let q = 0; q < pl; q++) {
      const m = m0 + i * pl + q;
      for (let k = 0; k < 9; k++) {
        const s = nb[q * 9 + k];
        if (s >= 0) copyRow(R, (i * pl + s) * r, im, m * K9 + k * r, r);
      }
    }
  }
}

const gatherCache = new Map<string, Int32Array>();

/**
 * The rows im2col (flip false) or the shifted copies of dZ (flip true, shiftedGrad) gather,
 * for B samples per level: entry (m, k) is the row of the level-stacked [itemRows + 1, *]
 * source, the last row (zero) where the neighbour is outside the map.
 */
function gatherRows(shapes: readonly LevelShape[], B: number, flip: boolean): Int32Array {
  const key = `${shapes.map((s) => `${s.h}x${s.w}`).join(',')}|${B}|${flip}`;
  let idx = gatherCache.get(key);
  if (idx) return idx;
  const itemRows = B * shapes.reduce((a, s) => a + s.h * s.w, 0);
  idx = new Int32Array(itemRows * 9);
  let m0 = 0;
  shapes.forEach(({ h, w }) => {
    const pl = h * w;
    const nb = neighbours(h, w);
    for (let i = 0; i < B; i++)
      for (let q = 0; q < pl; q++)
        for (let k = 0; k < 9; k++) {
          // flip: q is the offset-k neighbour of s exactly when s is the offset-(8-k) neighbour of q.
          const s = nb[q * 9 + (flip ? 8 - k : k)];
          idx[(m0 + i * pl + q) * 9 + k] = s >= 0 ? m0 + i * pl + s : itemRows;
        }
    m0 += B * pl;
  });
  gatherCache.set(key, idx);
  return idx;
}

/**
 * Per channel of rows m0..m0+n of Z [rows, W]: mean and biased variance, four channels at a
 * time in registers (a Float64Array accumulator per element costs several times more).
 */
function columnMoments(
  Z: Float32Array,
  m0: number,
  n: number,
  W: number,
  mean: Float64Array,
  vari: Float64Array,
): void {
  const from = m0 * W;
  const end = (m0 + n) * W;
  let ch = 0;
  for (; ch + 4 <= W; ch += 4) {
    let s0 = 0,
      s1 = 0,
      s2 = 0,
      s3 = 0,
      q0 = 0,
      q1 = 0,
      q2 = 0,
      q3 = 0;
    for (let o = from + ch; o < end; o += W) {
      const a = Z[o],
        b = Z[o + 1],
        c = Z[o + 2],
        d = Z[o + 3];
      s0 += a;
      s1 += b;
      s2 += c;
      s3 += d;
      q0 += a * a;
      q1 += b * b;
      q2 += c * c;
      q3 += d * d;
    }
    mean[ch] = s0 / n;
    mean[ch + 1] = s1 / n;
    mean[ch + 2] = s2 / n;
    mean[ch + 3] = s3 / n;
    vari[ch] = q0 / n;
    vari[ch + 1] = q1 / n;
    vari[ch + 2] = q2 / n;
    vari[ch + 3] = q3 / n;
  }
  for (; ch < W; ch++) {
    let s0 = 0;
    let q0 = 0;
    for (let o = from + ch; o < end; o += W) {
      s0 += Z[o];
      q0 += Z[o] * Z[o];
    }
    mean[ch] = s0 / n;
    vari[ch] = q0 / n;
  }
  for (ch = 0; ch < W; ch++) vari[ch] = Math.max(0, vari[ch] - mean[ch] * mean[ch]);
}

/**
 * BatchNorm (batch statistics) -> ReLU -> 1x1 of rows m0..m0+n of Z, into resPre; mean and
 * vari are the batch statistics, inv 1/sqrt(vari + eps). Nothing per element is stored: the
 * backward pass recomputes the normalised values from Z (cheaper than writing and reading them
 * back). convB is left out of the arithmetic: batch statistics subtract any per-channel
 * constant, so it only shifts the mean reported for the running statistics.
 */
function residualForward(
  Z: Float32Array,
  m0: number,
  n: number,
  W: number,
  p: StepParams,
  resPre: Float32Array,
  mean: Float64Array,
  vari: Float64Array,
  inv: Float64Array,
): void {
  const { gamma, beta, out } = p;
  columnMoments(Z, m0, n, W, mean, vari);
  for (let ch = 0; ch < W; ch++) inv[ch] = 1 / Math.sqrt(vari[ch] + BN_EPS);
  const outB = p.outB[0];
  for (let m = m0; m < m0 + n; m++) {
    const o = m * W;
    let s = outB;
    for (let ch = 0; ch < W; ch++) {
      const y = (Z[o + ch] - mean[ch]) * inv[ch] * gamma[ch] + beta[ch];
      if (y > 0) s += y * out[ch];
    }
    resPre[m] = s;
  }
}

/** ReLU(G + b1) -> . w2 + b2 for every row of G [rows, H]. */
function normalityForward(
  G: Float32Array,
  H: number,
  p: StepParams,
  hidden: Float32Array,
  normPre: Float32Array,
): void {
  const b2 = p.b2[0];
  for (let row = 0; row < normPre.length; row++) {
    let s = b2;
    for (let j = 0; j < H; j++) {
      const v = Math.max(0, G[row * H + j] + p.b1[j]);
      hidden[row * H + j] = v;
      s += v * p.w2[j];
    }
    normPre[row] = s;
  }
}

/** |x|' as TF.js takes it: 1 for x > 0, else -1. */
const sgn = (x: number): number => (x > 0 ? 1 : -1);

/** Normality head backward; dRow[row] = d loss / d |normPre[row]|. Returns dHid [rows, H] in `dHid`. */
function normalityBackward(
  dRow: Float64Array,
  normPre: Float32Array,
  hidden: Float32Array,
  H: number,
  w2: Float32Array,
  dHid: Float32Array,
  dW2: Float32Array,
  dB1: Float64Array,
): number {
  let dB2 = 0;
  for (let row = 0; row < normPre.length; row++) {
    const dn = dRow[row] * sgn(normPre[row]);
    dB2 += dn;
    for (let j = 0; j < H; j++) {
      const hv = hidden[row * H + j];
      dW2[j] += hv * dn;
      if (hv > 0) {
        const g = dn * w2[j];
        dHid[row * H + j] = g;
        dB1[j] += g;
      }
    }
  }
  return dB2;
}

/**
 * Residual head backward on one level, from d loss / d patch score (dMap [B*P], top-K mask
 * applied) through the 1x1, ReLU and BatchNorm to dZ (rows m0..m0+n); accumulates the small
 * parameters' gradients in acc. Returns d outB. The normalised values and activations are
 * recomputed from Z as residualForward had them (rounded to float32, as they were stored).
 */
function residualBackward(
  dMap: Float64Array,
  m0: number,
  n: number,
  W: number,
  p: StepParams,
  Z: Float32Array,
  resPre: Float32Array,
  mean: Float64Array,
  inv: Float64Array,
  dNormed: Float32Array,
  dZ: Float32Array,
  acc: { out: Float64Array; gamma: Float64Array; beta: Float64Array; convB: Float64Array },
  sumD: Float64Array,
  sumDN: Float64Array,
): number {
  let dOutB = 0;
  sumD.fill(0);
  sumDN.fill(0);
  const { out, gamma, beta } = p;
  const accOut = acc.out;
  const accGamma = acc.gamma;
  const accBeta = acc.beta;
  const accConvB = acc.convB;
  // Only the top-K patches have a gradient: the other rows of dNormed are zero and add nothing to the sums.
  for (let j = 0; j < n; j++) {
    if (dMap[j] === 0) continue;
    const oj = j * W;
    const o = (m0 + j) * W;
    const dr = dMap[j] * sgn(resPre[m0 + j]);
    dOutB += dr;
    for (let ch = 0; ch < W; ch++) {
      const z = (Z[o + ch] - mean[ch]) * inv[ch];
      const nz = Math.fround(z);
      const y = z * gamma[ch] + beta[ch];
      const a = y > 0 ? Math.fround(y) : 0;
      accOut[ch] += a * dr;
      let d = 0;
      if (a > 0) {
        const g = dr * out[ch];
        accGamma[ch] += g * nz;
        accBeta[ch] += g;
        d = g * gamma[ch];
      }
      dNormed[oj + ch] = d;
      sumD[ch] += d;
      sumDN[ch] += d * nz;
    }
  }
  for (let j = 0; j < n; j++) {
    const o = (m0 + j) * W;
    const oj = j * W;
    const top = dMap[j] !== 0;
    for (let ch = 0; ch < W; ch++) {
      const nz = Math.fround((Z[o + ch] - mean[ch]) * inv[ch]);
      const dn = top ? n * dNormed[oj + ch] : 0;
      const g = (inv[ch] / n) * (dn - sumD[ch] - nz * sumDN[ch]);
      dZ[o + ch] = g;
      accConvB[ch] += g;
    }
  }
  return dOutB;
}

/**
 * dR [B*P, r] (rows m0..) back to the read-out rows of dYT [cols, rows] (transposed): -dR to
 * each sample's, the mean over samples to each reference's.
 */
function scatterResidual(
  dR: Float32Array,
  m0: number,
  pl: number,
  r: number,
  rows: number,
  itemSrc: Int32Array,
  refSrc: Int32Array,
  dRef: Float64Array,
  dYT: Float32Array,
): void {
  dRef.fill(0);
  const o = 2 * rows;
  for (let j = 0; j < itemSrc.length; j++) {
    const q = j % pl;
    const y0 = o + itemSrc[j];
    const d0 = (m0 + j) * r;
    for (let ch = 0; ch < r; ch++) {
      const g = dR[d0 + ch];
      dYT[y0 + ch * rows] -= g;
      dRef[q * r + ch] += g;
    }
  }
  const nRef = refSrc.length / pl;
  for (let j = 0; j < refSrc.length; j++) {
    const q = j % pl;
    const y0 = o + refSrc[j];
    for (let ch = 0; ch < r; ch++) dYT[y0 + ch * rows] += dRef[q * r + ch] / nRef;
  }
}

/** Top-K mean per row of |pre| (column `col` of a [rows, stride] array); mask gets 1/k at the chosen entries. */
function topKScores(
  pre: Float32Array,
  stride: number,
  col: number,
  B: number,
  pl: number,
  k: number,
): { score: Float64Array; mask: Float32Array } {
  const abs = new Float32Array(B * pl);
  for (let j = 0; j < B * pl; j++) abs[j] = Math.abs(pre[j * stride + col]);
  const mask = topKMask(abs, B, pl, k);
  const score = new Float64Array(B);
  for (let j = 0; j < B * pl; j++) score[Math.floor(j / pl)] += mask[j] * abs[j];
  return { score, mask };
}

/**
 * Loss, gradients and BatchNorm statistics of one batch (the weights are not changed). The
 * larger gradients live in `buf`: valid until the next step on the same buffers.
 * `skip`: heads whose losses are left out; `lossRng` draws the deviation loss's prior
 * samples, head by head in the order draLoss uses.
 */
export async function stepGradients(
  p: StepParams,
  shapes: readonly LevelShape[],
  dims: { reduceTo: number; width: number; hidden: number },
  data: FastTrainData,
  plan: BatchPlan,
  settings: Pick<TrainSettings, 'loss' | 'topKRatio'>,
  lossRng: Rng,
  skip: readonly DraHead[],
  buf: StepBuffers = new StepBuffers(),
  mm: StepMatMul = { matMul: tfjsMatMul, gathered: tfjsGathered },
): Promise<StepResult> {
  const { matMul, matMulTA, gathered } = mm;
  const L = shapes.length;
  const c = shapes[0].c;
  const r = dims.reduceTo;
  const cols = 2 + r;
  const W = dims.width;
  const H = dims.hidden;
  const items = plan.items;
  const B = items.length;

  // Distinct maps of this step (same object = same features).
  const unique = new Map<ImageFeatures, number>();
  const src = (s: (typeof items)[number]): number => {
    const f = featuresOf(data, s);
    let u = unique.get(f);
    if (u === undefined) unique.set(f, (u = unique.size));
    return u;
  };
  const itemU = items.map(src);
  const refU = plan.references.map(src);
  const U = unique.size;
  const feats = [...unique.keys()];
  const P = shapes.map((s) => s.h * s.w);
  const rowOff: number[] = [];
  const itemRowOff: number[] = [];
  let rows = 0;
  let itemRows = 0;
  for (let l = 0; l < L; l++) {
    rowOff.push(rows);
    itemRowOff.push(itemRows);
    rows += U * P[l];
    itemRows += B * P[l];
  }
  // Row of Y behind each (sample, patch) after the sample's transform.
  const srcRows = (l: number, us: number[], refs: BatchPlan['items']): Int32Array => {
    const { h, w } = shapes[l];
    const pl = P[l];
    const out = new Int32Array(us.length * pl);
    us.forEach((u, i) => {
      const t = refs[i].transform;
      const perm = t === 0 ? null : cachedPermutation(t, h, w);
      for (let q = 0; q < pl; q++) out[i * pl + q] = rowOff[l] + u * pl + (perm ? perm[q] : q);
    });
    return out;
  };
  const itemSrc = shapes.map((_, l) => srcRows(l, itemU, items));
  const refSrc = shapes.map((_, l) => srcRows(l, refU, plan.references));

  // ---- 1x1 read-out of every distinct map: Y = X @ inW --------------------------------
  // TF.js (no matMulTA) multiplies X^T @ dY for inW's gradient fastest, from a transposed copy.
  const X = buf.get('X', rows * c, false);
  const XT = matMulTA ? null : buf.get('XT', c * rows);
  for (let l = 0; l < L; l++)
    for (let u = 0; u < U; u++) {
      const d = feats[u].levels[l].data;
      if (XT) packMapT(d, buf.transposed(d, P[l], c), X, XT, rowOff[l] + u * P[l], rows, P[l], c);
      else X.set(d, (rowOff[l] + u * P[l]) * c);
    }
  const Y = await matMul(X, rows, c, p.inW, cols, buf.get('Y', rows * cols, false));

  // ---- residual head: conv -> BatchNorm (batch statistics per level) -> ReLU -> 1x1 -> |.| ----
  const K9 = 9 * r;
  // Every scratch array below is written whole before it is read (no zeroing needed).
  // im2col as a row gather (GatheredProducts: onnxruntime never copies it back); R's extra last row is the zero one.
  const Rall = buf.get('R', (itemRows + 1) * r, false);
  Rall.fill(0, itemRows * r);
  const patchPre: Float32Array[] = [];
  const Rs: Float32Array[] = [];
  for (let l = 0; l < L; l++) {
    const n = B * P[l];
    const pre = buf.get(`pre${l}`, n * 2, false);
    const R = Rall.subarray(itemRowOff[l] * r, (itemRowOff[l] + n) * r);
    levelInputs(Y, cols, r, P[l], itemSrc[l], refSrc[l], p.patchB, new Float64Array(P[l] * r), pre, R);
    patchPre.push(pre);
    Rs.push(R);
  }
  const Z = await gathered.times(
    Rall,
    r,
    gatherRows(shapes, B, false),
    9,
    p.conv,
    W,
    buf.get('Z', itemRows * W, false),
  );
  const resPre = buf.get('resPre', itemRows, false);
  const bn: StepResult['bn'] = [];
  const bnMean: Float64Array[] = [];
  const invStd: Float64Array[] = [];
  for (let l = 0; l < L; l++) {
    const n = B * P[l];
    const mean = new Float64Array(W);
    const vari = new Float64Array(W);
    const inv = new Float64Array(W);
    residualForward(Z, itemRowOff[l], n, W, p, resPre, mean, vari, inv);
    bnMean.push(mean);
    invStd.push(inv);
    const reported = Float32Array.from(mean, (v, ch) => v + p.convB[ch]);
    bn.push({ mean: reported, variance: Float32Array.from(vari), count: n });
  }

  // ---- normality head on the pooled maps (a dihedral transform leaves the pool unchanged) ----
  const pooled = buf.get('pooled', L * B * c, false);
  const pooledT = matMulTA ? null : buf.get('pooledT', c * L * B, false);
  for (let l = 0; l < L; l++) {
    for (let i = 0; i < B; i++) {
      const v = averagePool(feats[itemU[i]].levels[l]);
      const row = l * B + i;
      pooled.set(v, row * c);
      if (pooledT) for (let k = 0; k < c; k++) pooledT[k * L * B + row] = v[k];
    }
  }
  const G = await matMul(pooled, L * B, c, p.w1, H, buf.get('G', L * B * H, false));
  const hidden = buf.get('hidden', L * B * H, false);
  const normPre = new Float32Array(L * B);
  normalityForward(G, H, p, hidden, normPre);

  // ---- image scores: top-K mean of each patch map per level, mean over levels ---------
  const masks: { seen: Float32Array; pseudo: Float32Array; residual: Float32Array }[] = [];
  const score: Record<DraHead, Float64Array> = {
    seen: new Float64Array(B),
    pseudo: new Float64Array(B),
    residual: new Float64Array(B),
    normality: new Float64Array(B),
  };
  for (let l = 0; l < L; l++) {
    const pl = P[l];
    const k = topKCount(settings.topKRatio, pl);
    const seen = topKScores(patchPre[l], 2, 0, B, pl, k);
    const pseudo = topKScores(patchPre[l], 2, 1, B, pl, k);
    const residual = topKScores(resPre.subarray(itemRowOff[l], itemRowOff[l] + B * pl), 1, 0, B, pl, k);
    masks.push({ seen: seen.mask, pseudo: pseudo.mask, residual: residual.mask });
    for (let i = 0; i < B; i++) {
      score.seen[i] += seen.score[i] / L;
      score.pseudo[i] += pseudo.score[i] / L;
      score.residual[i] += residual.score[i] / L;
      score.normality[i] += Math.abs(normPre[l * B + i]) / L;
    }
  }

  // ---- losses and d loss / d image score per head (draLoss's order and routing) ---------
  const routes = routeLabels(items.map((s) => s.label));
  const losses: Partial<Record<HeadName, number>> = {};
  const dScore: Partial<Record<DraHead, Float64Array>> = {};
  for (const head of ['normality', 'seen', 'pseudo', 'residual'] as DraHead[]) {
    const { mask, target } = routes[head];
    const count = mask.reduce((a, b) => a + b, 0);
    if (count === 0 || skip.includes(head)) continue;
    const prior = settings.loss === 'deviation' ? priorStats(lossRng) : { mean: 0, std: 1 };
    const d = new Float64Array(B);
    let total = 0;
    for (let i = 0; i < B; i++) {
      if (mask[i] === 0) continue;
      const [li, gi] = lossAndGrad(settings.loss, score[head][i], target[i], prior);
      total += li;
      d[i] = gi / count;
    }
    losses[head] = total / count;
    dScore[head] = d;
  }
  const reaches = (name: ParamName) => PARAM_HEADS[name].some((h) => dScore[h] !== undefined);
  /** d loss / d patch score on level l: the image score's gradient spread over its top-K patches. */
  const patchGrad = (head: DraHead, l: number): Float64Array => {
    const pl = P[l];
    const ds = dScore[head]!;
    const mask = masks[l][head as 'seen' | 'pseudo' | 'residual'];
    const out = new Float64Array(B * pl);
    for (let j = 0; j < B * pl; j++) if (mask[j] !== 0) out[j] = (ds[Math.floor(j / pl)] / L) * mask[j];
    return out;
  };

  // ---- backward: normality head ------------------------------------------------------
  const grads: Partial<StepParams> = {};
  if (dScore.normality) {
    const dRow = new Float64Array(L * B);
    for (let l = 0; l < L; l++) for (let i = 0; i < B; i++) dRow[l * B + i] = dScore.normality[i] / L;
    const dHid = buf.get('dHid', L * B * H);
    const dW2 = new Float32Array(H);
    const dB1 = new Float64Array(H);
    const dB2 = normalityBackward(dRow, normPre, hidden, H, p.w2, dHid, dW2, dB1);
    const gW1 = buf.get('gW1', c * H, false);
    grads.w1 = matMulTA
      ? await matMulTA(pooled, c, L * B, dHid, H, gW1)
      : await matMul(pooledT!, c, L * B, dHid, H, gW1);
    grads.b1 = Float32Array.from(dB1);
    grads.w2 = dW2;
    grads.b2 = Float32Array.of(dB2);
  }

  // ---- backward: patch heads and residual head, down to dY = d loss / d (X @ inW) --------
  // Kept transposed, dYT [cols, rows]: inW's gradient is then the plain product dYT @ X, which
  // onnxruntime runs in about 3/4 of the time of X^T @ dY (no transposed packing of X).
  const dYT = buf.get('dYT', cols * rows);
  const dPatchB = new Float64Array(2);
  for (let l = 0; l < L; l++) {
    for (const [col, head] of [
      [0, 'seen'],
      [1, 'pseudo'],
    ] as const) {
      if (!dScore[head]) continue;
      dPatchB[col] += scatterPatchGrad(patchGrad(head, l), patchPre[l], col, itemSrc[l], dYT, col * rows);
    }
  }
  if (dScore.seen || dScore.pseudo) grads.patchB = Float32Array.from(dPatchB);

  if (dScore.residual) {
    const dZ = buf.get('dZ', (itemRows + 1) * W, false);
    dZ.fill(0, itemRows * W);
    const acc = {
      out: new Float64Array(W),
      gamma: new Float64Array(W),
      beta: new Float64Array(W),
      convB: new Float64Array(W),
    };
    let dOutB = 0;
    for (let l = 0; l < L; l++) {
      const n = B * P[l];
      const dNormed = buf.get(`dNormed${l}`, n * W, false);
      dOutB += residualBackward(
        patchGrad('residual', l),
        itemRowOff[l],
        n,
        W,
        p,
        Z,
        resPre,
        bnMean[l],
        invStd[l],
        dNormed,
        dZ,
        acc,
        new Float64Array(W),
        new Float64Array(W),
      );
    }
    // The shifted copies of dZ, dZs [itemRows, 9W]: dR = dZs @ conv regrouped (col2im(dZ @ conv^T)),
    // and d conv = im^T dZ as R^T dZs (block k of row s pairs R's row s with dZ where s is the
    // offset-k input), plain products without a transposed im2col.
    const KW = 9 * W;
    const RT = buf.get('RT', r * itemRows, false);
    for (let l = 0; l < L; l++) transpose(Rs[l], B * P[l], r, RT, itemRows, itemRowOff[l]);
    const convRe = regroupConvForDR(p.conv, r, W, buf.get('convRe', KW * r, false));
    const G = buf.get('gConvT', r * KW, false);
    const dR = buf.get('dR', itemRows * r, false);
    await gathered.both(dZ, W, gatherRows(shapes, B, true), 9, RT, r, convRe, r, G, dR);
    grads.conv = regroupConvGrad(G, r, W, buf.get('gConv', K9 * W, false));
    grads.convB = Float32Array.from(acc.convB);
    grads.gamma = Float32Array.from(acc.gamma);
    grads.beta = Float32Array.from(acc.beta);
    grads.out = Float32Array.from(acc.out);
    grads.outB = Float32Array.of(dOutB);

    for (let l = 0; l < L; l++)
      scatterResidual(
        dR,
        itemRowOff[l],
        P[l],
        r,
        rows,
        itemSrc[l],
        refSrc[l],
        new Float64Array(P[l] * r),
        dYT,
      );
  }
  if (reaches('inW')) {
    const gInW = buf.get('gInW', c * cols, false);
    if (XT) {
      const dY = buf.get('dY', rows * cols, false);
      transpose(dYT, cols, rows, dY);
      grads.inW = await matMul(XT, c, rows, dY, cols, gInW);
    } else {
      const gT = await matMul(dYT, cols, rows, X, c, buf.get('gInWT', cols * c, false));
      grads.inW = transpose(gT, cols, c, gInW);
    }
  }
  return { losses, grads, bn };
}

/** Sum of squares, four accumulators (a long dependency chain through one sum runs several times slower). */
function sumSquares(g: Float32Array): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  for (; i + 4 <= g.length; i += 4) {
    s0 += g[i] * g[i];
    s1 += g[i + 1] * g[i + 1];
    s2 += g[i + 2] * g[i + 2];
    s3 += g[i + 3] * g[i + 3];
  }
  for (; i < g.length; i++) s0 += g[i] * g[i];
  return s0 + s1 + s2 + s3;
}

/** One parameter's Adam update, in a small function of arrays and numbers V8 optimises on its own. */
function adamUpdate(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  scale: number,
  weightDecay: number,
  beta1: number,
  beta2: number,
  eps: number,
  stepSize: number,
  bc2: number,
): void {
  const c1 = 1 - beta1;
  const c2 = 1 - beta2;
  const n = p.length;
  for (let i = 0; i < n; i++) {
    const gi = g[i] * scale + p[i] * weightDecay;
    // The moments as stored (float32), without reading them back.
    const mi = Math.fround(beta1 * m[i] + c1 * gi);
    const vi = Math.fround(beta2 * v[i] + c2 * gi * gi);
    m[i] = mi;
    v[i] = vi;
    p[i] -= (mi / (Math.sqrt(vi / bc2) + eps)) * stepSize;
  }
}

/**
 * Adam as ClippedAdam (adam.ts) runs it, on plain arrays: global gradient-norm clipping, L2
 * weight decay added to the gradient, bias correction; a parameter without a gradient is left
 * as it is.
 */
export class PlainAdam {
  private readonly m: Partial<Record<ParamName, Float32Array>> = {};
  private readonly v: Partial<Record<ParamName, Float32Array>> = {};
  private t = 0;

  constructor(
    private readonly params: StepParams,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly eps = 1e-8,
  ) {}

  step(grads: Partial<StepParams>, lr: number, weightDecay: number, clipNorm: number): number {
    this.t++;
    let sq = 0;
    for (const name of PARAM_NAMES) {
      const g = grads[name];
      if (g) sq += sumSquares(g);
    }
    const norm = Math.sqrt(sq);
    const scale = clipNorm > 0 ? Math.min(1, clipNorm / (norm + 1e-6)) : 1;
    const bc1 = 1 - this.beta1 ** this.t;
    const bc2 = 1 - this.beta2 ** this.t;
    for (const name of PARAM_NAMES) {
      const g = grads[name];
      if (!g) continue;
      const p = this.params[name];
      const m = (this.m[name] ??= new Float32Array(p.length));
      const v = (this.v[name] ??= new Float32Array(p.length));
      adamUpdate(p, g, m, v, scale, weightDecay, this.beta1, this.beta2, this.eps, lr / bc1, bc2);
    }
    return norm;
  }
}
