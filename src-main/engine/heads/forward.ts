/**
 * The four DRA heads as TF.js ops that all have gradients on the wasm backend (matMul,
 * elementwise, slice, pad, concat): the 3x3 conv of the residual head is an im2col of nine
 * shifted slices followed by one matMul, because wasm has no conv2d filter gradient.
 */
import * as tf from '@tensorflow/tfjs';
import type { DraWeights } from './state';
import { im2col3x3, matMul, matMulConstInput, sliceColumns } from './matmul';
import { blockDiagonal } from './init';

/** Live tensors of the head weights; trainable ones are tf.Variables during training. */
export interface HeadTensors {
  /**
   * The 1x1 maps that read the features: seen and pseudo (columns 0, 1), then the residual
   * reduction (columns 2..) when there is one. One matrix so the big feature matrix is
   * multiplied (and transposed for the gradient) once.
   */
  inW: tf.Tensor2D;
  /** Columns of inW beyond the patch heads' (0: no reduction). */
  reduceTo: number;
  /** Columns of inW that feed the seen and pseudo heads: 2, or 2 * patchHidden. */
  patchCols: number;
  /** Hidden units per patch head (0: the paper's 1x1 conv). */
  patchHidden: number;
  patchB: tf.Tensor1D;
  /** Per-patch MLP only: output layer [2*hidden, 2], its block mask (a constant) and bias. */
  patchOut?: tf.Tensor2D;
  patchMask?: tf.Tensor2D;
  patchOutB?: tf.Tensor1D;
  conv: tf.Tensor2D;
  convB: tf.Tensor1D;
  gamma: tf.Tensor1D;
  beta: tf.Tensor1D;
  out: tf.Tensor2D;
  outB: tf.Tensor1D;
  w1: tf.Tensor2D;
  b1: tf.Tensor1D;
  w2: tf.Tensor2D;
  b2: tf.Tensor1D;
}

export const BN_EPS = 1e-5;
export const BN_MOMENTUM = 0.1;

export function headTensors(w: DraWeights, asVariables: boolean): HeadTensors {
  const c = w.channels;
  const r = w.residual;
  const convIn = r.reduceTo > 0 ? r.reduceTo : c;
  const mk = <T extends tf.Tensor>(t: T, name: string): T => {
    if (!asVariables) return t;
    const v = tf.variable(t, true, `dra_${name}_${nextId++}`);
    t.dispose(); // the variable holds its own reference to the data
    return v as unknown as T;
  };
  const ph = w.patch.hidden ?? 0;
  const pc = ph > 0 ? 2 * ph : 2;
  const inCols = pc + r.reduceTo;
  const inW = new Float32Array(c * inCols);
  for (let i = 0; i < c; i++) {
    for (let j = 0; j < pc; j++) inW[i * inCols + j] = w.patch.w[i * pc + j];
    for (let j = 0; j < r.reduceTo; j++) inW[i * inCols + pc + j] = r.reduce[i * r.reduceTo + j];
  }
  const mlp =
    ph > 0
      ? {
          patchOut: mk(tf.tensor2d(w.patch.out!, [pc, 2]), 'patchOut'),
          patchMask: tf.tensor2d(blockDiagonal(new Float32Array(pc * 2).fill(1), ph), [pc, 2]),
          patchOutB: mk(tf.tensor1d(w.patch.outB!), 'patchOutB'),
        }
      : {};
  return {
    inW: mk(tf.tensor2d(inW, [c, inCols]), 'inW'),
    reduceTo: r.reduceTo,
    patchCols: pc,
    patchHidden: ph,
    patchB: mk(tf.tensor1d(w.patch.b), 'patchB'),
    ...mlp,
    conv: mk(tf.tensor2d(r.conv, [9 * convIn, r.width]), 'conv'),
    convB: mk(tf.tensor1d(r.convB), 'convB'),
    gamma: mk(tf.tensor1d(r.gamma), 'gamma'),
    beta: mk(tf.tensor1d(r.beta), 'beta'),
    out: mk(tf.tensor2d(r.out, [r.width, 1]), 'out'),
    outB: mk(tf.tensor1d(r.outB), 'outB'),
    w1: mk(tf.tensor2d(w.normality.w1, [c, w.normality.hidden]), 'w1'),
    b1: mk(tf.tensor1d(w.normality.b1), 'b1'),
    w2: mk(tf.tensor2d(w.normality.w2, [w.normality.hidden, 1]), 'w2'),
    b2: mk(tf.tensor1d(w.normality.b2), 'b2'),
  };
}
let nextId = 0;

/** Copies live tensors back into plain weights (running BN statistics are kept from `base`). */
export function readWeights(t: HeadTensors, base: DraWeights): DraWeights {
  const f = (x: tf.Tensor) => Float32Array.from(x.dataSync() as Float32Array);
  const c = base.channels;
  const rt = t.reduceTo;
  const pc = t.patchCols;
  const inCols = pc + rt;
  const inW = t.inW.dataSync() as Float32Array;
  const patchW = new Float32Array(c * pc);
  const reduce = new Float32Array(c * rt);
  for (let i = 0; i < c; i++) {
    for (let j = 0; j < pc; j++) patchW[i * pc + j] = inW[i * inCols + j];
    for (let j = 0; j < rt; j++) reduce[i * rt + j] = inW[i * inCols + pc + j];
  }
  const patch: DraWeights['patch'] =
    t.patchHidden > 0
      ? {
          w: patchW,
          b: f(t.patchB),
          hidden: t.patchHidden,
          out: blockDiagonal(f(t.patchOut!), t.patchHidden),
          outB: f(t.patchOutB!),
        }
      : { w: patchW, b: f(t.patchB) };
  return {
    channels: c,
    patch,
    residual: {
      ...base.residual,
      reduce,
      conv: f(t.conv),
      convB: f(t.convB),
      gamma: f(t.gamma),
      beta: f(t.beta),
      runMean: Float32Array.from(base.residual.runMean),
      runVar: Float32Array.from(base.residual.runVar),
      out: f(t.out),
      outB: f(t.outB),
    },
    normality: { hidden: base.normality.hidden, w1: f(t.w1), b1: f(t.b1), w2: f(t.w2), b2: f(t.b2) },
  };
}

export function disposeHeadTensors(t: HeadTensors): void {
  for (const v of Object.values(t)) if (v instanceof tf.Tensor) v.dispose();
}

/**
 * Seen and pseudo patch scores [rows, 2] (already |.|) from their inW columns z [rows, patchCols]:
 * the paper's 1x1 conv, or the per-patch MLP.
 */
function patchHeads(t: HeadTensors, z: tf.Tensor2D): tf.Tensor2D {
  if (t.patchHidden === 0) return tf.abs(tf.add(z, t.patchB)) as tf.Tensor2D;
  const hidden = tf.relu(tf.add(z, t.patchB)) as tf.Tensor2D;
  return tf.abs(
    tf.add(matMul(hidden, tf.mul(t.patchOut!, t.patchMask!) as tf.Tensor2D), t.patchOutB!),
  ) as tf.Tensor2D;
}

/** Trainable tensors (BN running statistics are not among them). */
export function trainableList(t: HeadTensors): tf.Variable[] {
  return Object.values(t).filter((v): v is tf.Variable => v instanceof tf.Variable);
}

export interface LevelOutput {
  /** [B, h*w] patch score maps (already |.|). */
  seen: tf.Tensor2D;
  pseudo: tf.Tensor2D;
  residual: tf.Tensor2D;
  /** [B] holistic normality score (|.|). */
  normality: tf.Tensor1D;
  /** Batch statistics of the residual BatchNorm (training only), biased variance. */
  bn?: { mean: tf.Tensor1D; variance: tf.Tensor1D; count: number };
}

export type BnMode = { training: true } | { training: false; mean: tf.Tensor1D; variance: tf.Tensor1D };

/** 3x3 conv with padding 1 as im2col + matMul. x: [B, h, w, cin]; conv: [9*cin, out]. */
export function conv3x3(x: tf.Tensor4D, conv: tf.Tensor2D, bias: tf.Tensor1D): tf.Tensor2D {
  return tf.add(matMul(im2col3x3(x), conv), bias) as tf.Tensor2D;
}

/**
 * All four heads on one pyramid level. x: [B, h, w, c] features; ref: [h, w, c] reference map
 * M_r (residual R = M_r - M_x). constInput: x and ref need no gradient (fast mode).
 * pooled: the global average pool of x when the caller already has it ([B, c]).
 */
export function forwardLevel(
  t: HeadTensors,
  x: tf.Tensor4D,
  ref: tf.Tensor3D,
  bn: BnMode,
  constInput = true,
  pooled?: tf.Tensor2D,
): LevelOutput {
  const [b, h, w, c] = x.shape;
  const p = h * w;
  const flat = tf.reshape(x, [b * p, c]) as tf.Tensor2D;

  // The features are constants in fast mode; in full mode (backbone training) they are not.
  const mmIn = constInput ? matMulConstInput : matMul;
  const refFlat = tf.reshape(ref, [p, c]) as tf.Tensor2D;
  let sp: tf.Tensor2D;
  let resid: tf.Tensor2D;
  if (t.reduceTo > 0) {
    // reduce(M_r - M_x) = reduce(M_r) - reduce(M_x): one product of [M_x rows; M_r rows] with
    // inW serves the patch heads and the reduction; the residual is formed on r channels.
    const r = t.reduceTo;
    const pc = t.patchCols;
    const y = mmIn(tf.concat([flat, refFlat], 0) as tf.Tensor2D, t.inW); // [B*p + p, pc + r]
    const yx = tf.slice(y, [0, 0], [b * p, pc + r]) as tf.Tensor2D;
    const yr = tf.slice(y, [b * p, 0], [p, pc + r]) as tf.Tensor2D;
    sp = patchHeads(t, sliceColumns(yx, 0, pc));
    const xRed = tf.reshape(sliceColumns(yx, pc, r), [b, p, r]);
    resid = tf.reshape(tf.sub(sliceColumns(yr, pc, r), xRed), [b * p, r]) as tf.Tensor2D;
  } else {
    sp = patchHeads(t, mmIn(flat, t.inW));
    resid = tf.reshape(tf.sub(ref, x), [b * p, c]);
  }
  const seen = tf.reshape(tf.slice(sp, [0, 0], [b * p, 1]), [b, p]) as tf.Tensor2D;
  const pseudo = tf.reshape(tf.slice(sp, [0, 1], [b * p, 1]), [b, p]) as tf.Tensor2D;

  const cin = resid.shape[1];
  const z = conv3x3(tf.reshape(resid, [b, h, w, cin]), t.conv, t.convB);
  let out: LevelOutput['bn'];
  let normed: tf.Tensor2D;
  if (bn.training) {
    const m = tf.moments(z, 0);
    out = { mean: m.mean as tf.Tensor1D, variance: m.variance as tf.Tensor1D, count: b * p };
    normed = tf.div(tf.sub(z, m.mean), tf.sqrt(tf.add(m.variance, BN_EPS)));
  } else {
    normed = tf.div(tf.sub(z, bn.mean), tf.sqrt(tf.add(bn.variance, BN_EPS)));
  }
  const act = tf.relu(tf.add(tf.mul(normed, t.gamma), t.beta)) as tf.Tensor2D;
  const residual = tf.reshape(tf.abs(tf.add(matMul(act, t.out), t.outB)), [b, p]) as tf.Tensor2D;

  const gap = pooled ?? (tf.mean(x, [1, 2]) as tf.Tensor2D);
  const hidden = tf.relu(tf.add(mmIn(gap, t.w1), t.b1)) as tf.Tensor2D;
  const normality = tf.reshape(tf.abs(tf.add(matMul(hidden, t.w2), t.b2)), [b]) as tf.Tensor1D;

  return { seen, pseudo, residual, normality, bn: out };
}
