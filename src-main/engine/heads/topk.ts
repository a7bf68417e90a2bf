/**
 * Top-K multiple-instance pooling. tf.topk has no gradient, so the K best patches are chosen
 * on plain numbers (outside the gradient) and applied as a constant averaging mask.
 */
import * as tf from '@tensorflow/tfjs';

/** K = max(1, floor(ratio * patches)) (dra.md). */
export function topKCount(ratio: number, patches: number): number {
  return Math.max(1, Math.min(patches, Math.floor(ratio * patches)));
}

/**
 * For each row of a [rows, cols] matrix, a mask holding 1/k at its k largest entries and 0
 * elsewhere. Ties go to the lower index so the choice is deterministic.
 */
export function topKMask(values: Float32Array, rows: number, cols: number, k: number): Float32Array {
  const mask = new Float32Array(rows * cols);
  const idx = new Int32Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let j = 0; j < cols; j++) idx[j] = j;
    // Partial selection: k passes of "largest remaining" is cheap for k ~ 0.1 * cols <= 20.
    for (let s = 0; s < k; s++) {
      let best = s;
      for (let j = s + 1; j < cols; j++) {
        if (
          values[base + idx[j]] > values[base + idx[best]] ||
          (values[base + idx[j]] === values[base + idx[best]] && idx[j] < idx[best])
        )
          best = j;
      }
      const t = idx[s];
      idx[s] = idx[best];
      idx[best] = t;
      mask[base + idx[s]] = 1 / k;
    }
  }
  return mask;
}

/** Mean of the k largest entries of each row, on plain numbers. */
export function topKMean(values: Float32Array, rows: number, cols: number, k: number): Float32Array {
  const mask = topKMask(values, rows, cols, k);
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += mask[r * cols + j] * values[r * cols + j];
    out[r] = s;
  }
  return out;
}

/**
 * Differentiable top-K mean of a [rows, cols] tensor: gradient flows to the chosen entries
 * only, as with PyTorch's topk + mean.
 */
export function topKMeanTensor(patch: tf.Tensor2D, k: number): tf.Tensor1D {
  const [rows, cols] = patch.shape;
  const mask = tf.tensor2d(topKMask(patch.dataSync() as Float32Array, rows, cols, k), [rows, cols]);
  return tf.sum(tf.mul(patch, mask), 1) as tf.Tensor1D;
}
