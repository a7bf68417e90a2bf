/**
 * Detection metrics of the paper's protocol: AUC-ROC and average precision (AUC-PR),
 * with the same definitions as scikit-learn so numbers compare with published ones.
 * Label 1 is the positive (anomalous) class; a higher score means more anomalous.
 */
import { EngineError, headSign } from './types';

export interface RocPoint {
  fpr: number;
  tpr: number;
  /** Images scoring >= threshold are called anomalous; the first point has +Infinity. */
  threshold: number;
}

export interface PrPoint {
  recall: number;
  precision: number;
  threshold: number;
}

interface Counts {
  /** Distinct scores, descending. */
  thresholds: number[];
  /** Cumulative true / false positives at each threshold. */
  tp: number[];
  fp: number[];
  pos: number;
  neg: number;
}

function check(scores: ArrayLike<number>, labels: ArrayLike<number>): void {
  if (scores.length !== labels.length) {
    throw new EngineError(`metrics: ${scores.length} scores but ${labels.length} labels`);
  }
  let pos = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== 0 && labels[i] !== 1)
      throw new EngineError(`metrics: label ${labels[i]} is not 0 or 1`);
    if (!Number.isFinite(scores[i]))
      throw new EngineError(`metrics: score ${scores[i]} at ${i} is not a finite number`);
    pos += labels[i];
  }
  if (pos === 0 || pos === labels.length) {
    throw new EngineError('metrics: need both normal (0) and anomalous (1) labels, got a single class');
  }
}

/** Tied scores form one threshold: they are called anomalous together. */
function countAtThresholds(scores: ArrayLike<number>, labels: ArrayLike<number>): Counts {
  check(scores, labels);
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a]);
  const thresholds: number[] = [];
  const tp: number[] = [];
  const fp: number[] = [];
  let t = 0;
  let f = 0;
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    if (labels[i] === 1) t++;
    else f++;
    if (k === order.length - 1 || scores[order[k + 1]] !== scores[i]) {
      thresholds.push(scores[i]);
      tp.push(t);
      fp.push(f);
    }
  }
  return { thresholds, tp, fp, pos: t, neg: f };
}

/** Mann-Whitney U / (n+ n-): a tie between a positive and a negative counts one half. */
export function aucRoc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const { tp, fp, pos, neg } = countAtThresholds(scores, labels);
  // Trapezoids under the step curve; a tied group's diagonal segment is the half credit.
  let area = 0;
  let prevTp = 0;
  let prevFp = 0;
  for (let k = 0; k < tp.length; k++) {
    area += ((fp[k] - prevFp) * (tp[k] + prevTp)) / 2;
    prevTp = tp[k];
    prevFp = fp[k];
  }
  return area / (pos * neg);
}

/** scikit-learn's average_precision_score: sum over thresholds of (R_n - R_{n-1}) P_n. */
export function averagePrecision(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const { tp, fp, pos } = countAtThresholds(scores, labels);
  let ap = 0;
  let prevRecall = 0;
  for (let k = 0; k < tp.length; k++) {
    const recall = tp[k] / pos;
    ap += (recall - prevRecall) * (tp[k] / (tp[k] + fp[k]));
    prevRecall = recall;
  }
  return ap;
}

/** ROC points from (0, 0) to (1, 1), one per distinct score (nothing dropped). */
export function rocCurve(scores: ArrayLike<number>, labels: ArrayLike<number>): RocPoint[] {
  const { thresholds, tp, fp, pos, neg } = countAtThresholds(scores, labels);
  const points: RocPoint[] = [{ fpr: 0, tpr: 0, threshold: Infinity }];
  thresholds.forEach((threshold, k) => points.push({ fpr: fp[k] / neg, tpr: tp[k] / pos, threshold }));
  return points;
}

/**
 * Precision-recall points by increasing recall, starting at (recall 0, precision 1)
 * as scikit-learn's curve ends there.
 */
export function prCurve(scores: ArrayLike<number>, labels: ArrayLike<number>): PrPoint[] {
  const { thresholds, tp, fp, pos } = countAtThresholds(scores, labels);
  const points: PrPoint[] = [{ recall: 0, precision: 1, threshold: Infinity }];
  thresholds.forEach((threshold, k) =>
    points.push({ recall: tp[k] / pos, precision: tp[k] / (tp[k] + fp[k]), threshold }),
  );
  return points;
}

/** Mean and population standard deviation (numpy's default, ddof = 0). */
export function meanStd(values: number[]): { mean: number; std: number } {
  if (values.length === 0) throw new EngineError('meanStd: no values');
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(variance) };
}

/** A head's score as an anomaly score (the normality head's negated, see headSign). */
export function headAnomalyScore(head: string, value: number): number {
  return headSign(head) * value;
}
