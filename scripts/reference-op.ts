/**
 * A fixed reference op for the speed scripts: CPU ms of a [2048, 768] x [768, 64] matMul (the
 * size of the heads' biggest products), best of 15. Times divided by it compare across loads.
 */
import * as tf from '@tensorflow/tfjs';

export const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

export function referenceOpMs(): number {
  const a = tf.randomNormal([2048, 768]) as tf.Tensor2D;
  const b = tf.randomNormal([768, 64]) as tf.Tensor2D;
  let best = Infinity;
  for (let i = 0; i < 17; i++) {
    const t = cpuMs();
    const c = tf.matMul(a, b);
    c.dataSync();
    c.dispose();
    if (i >= 2) best = Math.min(best, cpuMs() - t);
  }
  tf.dispose([a, b]);
  return best;
}
