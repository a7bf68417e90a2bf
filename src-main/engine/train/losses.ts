/**
 * DRA's losses (dra.md): the deviation loss, and the binary cross-entropy and focal losses
 * the paper compares it with; plus the routing of labels to heads.
 */
import * as tf from '@tensorflow/tfjs';
import type { HeadName, LossKind } from '../types';
import type { Rng } from '../util/rng';

/** 0 normal, 1 seen anomaly, 2 pseudo anomaly. */
export type SampleLabel = 0 | 1 | 2;

export const DEVIATION_MARGIN = 5;
export const DEVIATION_SAMPLES = 5000;

export type DraHead = 'seen' | 'pseudo' | 'residual' | 'normality';

/** Which samples each head learns from and which of them are its positives (dra.md's table). */
export interface Route {
  /** 1 where the sample counts for this head. */
  mask: Float32Array;
  /** 1 where the head's target is 1. */
  target: Float32Array;
}

export function routeLabels(labels: readonly SampleLabel[]): Record<DraHead, Route> {
  const n = labels.length;
  const make = (inHead: (l: SampleLabel) => boolean, positive: (l: SampleLabel) => boolean): Route => {
    const mask = new Float32Array(n);
    const target = new Float32Array(n);
    labels.forEach((l, i) => {
      mask[i] = inHead(l) ? 1 : 0;
      target[i] = inHead(l) && positive(l) ? 1 : 0;
    });
    return { mask, target };
  };
  return {
    normality: make(
      () => true,
      (l) => l === 0,
    ),
    seen: make(
      (l) => l !== 2,
      (l) => l === 1,
    ),
    pseudo: make(
      (l) => l !== 1,
      (l) => l === 2,
    ),
    residual: make(
      () => true,
      (l) => l !== 0,
    ),
  };
}

/** Mean and (unbiased, as torch.std) standard deviation of n fresh N(0,1) draws. */
export function priorStats(rng: Rng, n = DEVIATION_SAMPLES): { mean: number; std: number } {
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const r = rng.normal();
    s += r;
    s2 += r * r;
  }
  const mean = s / n;
  return { mean, std: Math.sqrt((s2 - n * mean * mean) / (n - 1)) };
}

/** Per-sample deviation loss: (1-y)|dev| + y max(0, a - dev), dev = (s - mean(r)) / std(r). */
export function deviationPerSample(
  scores: tf.Tensor1D,
  target: tf.Tensor1D,
  prior: { mean: number; std: number },
  margin = DEVIATION_MARGIN,
): tf.Tensor1D {
  const dev = tf.div(tf.sub(scores, prior.mean), prior.std);
  const inlier = tf.abs(dev);
  const outlier = tf.relu(tf.sub(margin, dev));
  return tf.add(tf.mul(tf.sub(1, target), inlier), tf.mul(target, outlier)) as tf.Tensor1D;
}

/** Binary cross-entropy with the score as the logit (as BCEWithLogitsLoss), numerically stable. */
export function bcePerSample(scores: tf.Tensor1D, target: tf.Tensor1D): tf.Tensor1D {
  // max(s,0) - s*y + log(1 + exp(-|s|))
  return tf.add(
    tf.sub(tf.relu(scores), tf.mul(scores, target)),
    tf.log1p(tf.exp(tf.neg(tf.abs(scores)))),
  ) as tf.Tensor1D;
}

/** Focal loss on the score as a logit: alpha (1 - p_t)^gamma BCE, alpha 1, gamma 2. */
export function focalPerSample(scores: tf.Tensor1D, target: tf.Tensor1D, gamma = 2, alpha = 1): tf.Tensor1D {
  const bce = bcePerSample(scores, target);
  const pt = tf.exp(tf.neg(bce));
  return tf.mul(alpha, tf.mul(tf.pow(tf.sub(1, pt), gamma), bce)) as tf.Tensor1D;
}

export function lossPerSample(
  kind: LossKind,
  scores: tf.Tensor1D,
  target: tf.Tensor1D,
  rng: Rng,
): tf.Tensor1D {
  switch (kind) {
    case 'deviation':
      return deviationPerSample(scores, target, priorStats(rng));
    case 'bce':
      return bcePerSample(scores, target);
    case 'focal':
      return focalPerSample(scores, target);
  }
}

/**
 * Sum over heads of each head's mean loss over its own inputs. Heads whose route is empty
 * (e.g. 'seen' without labelled anomalies) or listed in `skip` contribute nothing.
 * Returns the total and the per-head scalars (the caller owns all of them).
 */
export function draLoss(
  kind: LossKind,
  scores: Record<DraHead, tf.Tensor1D>,
  labels: readonly SampleLabel[],
  rng: Rng,
  skip: readonly DraHead[] = [],
): { total: tf.Scalar; perHead: Partial<Record<HeadName, tf.Scalar>> } {
  const routes = routeLabels(labels);
  const perHead: Partial<Record<HeadName, tf.Scalar>> = {};
  let total: tf.Scalar = tf.scalar(0);
  for (const head of ['normality', 'seen', 'pseudo', 'residual'] as DraHead[]) {
    const { mask, target } = routes[head];
    const count = mask.reduce((a, b) => a + b, 0);
    if (count === 0 || skip.includes(head)) continue;
    const per = lossPerSample(kind, scores[head], tf.tensor1d(target), rng);
    const l = tf.div(tf.sum(tf.mul(per, tf.tensor1d(mask))), count) as tf.Scalar;
    perHead[head] = l;
    total = tf.add(total, l) as tf.Scalar;
  }
  return { total, perHead };
}
