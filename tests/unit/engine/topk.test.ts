import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { topKCount, topKMask, topKMean, topKMeanTensor } from '../../../src-main/engine/heads/topk';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('top-K MIL', () => {
  it('K = max(1, floor(ratio * patches))', () => {
    expect(topKCount(0.1, 49)).toBe(4); // 7x7
    expect(topKCount(0.1, 16)).toBe(1); // 4x4: floor(1.6)
    expect(topKCount(0.1, 196)).toBe(19); // 14x14
    expect(topKCount(0.1, 4)).toBe(1); // floor(0.4) -> at least 1
  });

  it('averages the K largest patch scores (hand example)', () => {
    // Row 0: top-2 of [0.1, 0.9, 0.4, 0.7] = (0.9 + 0.7) / 2 = 0.8
    // Row 1: top-2 of [2, 2, 1, 3] = (3 + 2) / 2 = 2.5, the tie goes to the lower index
    const v = new Float32Array([0.1, 0.9, 0.4, 0.7, 2, 2, 1, 3]);
    expect(Array.from(topKMean(v, 2, 4, 2)).map((x) => +x.toFixed(5))).toEqual([0.8, 2.5]);
    expect(Array.from(topKMask(v, 2, 4, 2))).toEqual([0, 0.5, 0, 0.5, 0.5, 0, 0, 0.5]);
  });

  it('the tensor form has the same value and sends gradient only to the chosen patches', () => {
    const x = tf.tensor2d([0.1, 0.9, 0.4, 0.7], [1, 4]);
    expect(topKMeanTensor(x, 2).dataSync()[0]).toBeCloseTo(0.8, 5);
    const g = tf.grad((t: tf.Tensor) => tf.sum(topKMeanTensor(t as tf.Tensor2D, 2)))(x);
    expect(Array.from(g.dataSync())).toEqual([0, 0.5, 0, 0.5]);
  });
});
