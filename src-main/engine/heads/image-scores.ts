/** Image scores of the heads from their per-level outputs: top-K mean per level, then the mean over levels. */
import * as tf from '@tensorflow/tfjs';
import type { DraHead } from '../train/losses';
import type { LevelOutput } from './forward';
import { topKCount, topKMeanTensor } from './topk';

export function imageScores(levels: LevelOutput[], topKRatio: number): Record<DraHead, tf.Tensor1D> {
  const acc: Partial<Record<DraHead, tf.Tensor1D>> = {};
  const add = (h: DraHead, t: tf.Tensor1D) => {
    acc[h] = acc[h] ? (tf.add(acc[h]!, t) as tf.Tensor1D) : t;
  };
  for (const out of levels) {
    const k = topKCount(topKRatio, out.seen.shape[1]);
    add('seen', topKMeanTensor(out.seen, k));
    add('pseudo', topKMeanTensor(out.pseudo, k));
    add('residual', topKMeanTensor(out.residual, k));
    add('normality', out.normality);
  }
  const n = levels.length;
  return {
    seen: tf.div(acc.seen!, n),
    pseudo: tf.div(acc.pseudo!, n),
    residual: tf.div(acc.residual!, n),
    normality: tf.div(acc.normality!, n),
  };
}
