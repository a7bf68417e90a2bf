import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { scoreFeatures } from '../../../src-main/engine/infer';
import { trainFast, type FastTrainData } from '../../../src-main/engine/train';
import { normalFeatures, withDefect } from '../../../src-main/engine/train/synthetic';
import { resolveSettings } from '../../../src-main/engine/settings';
import { Rng } from '../../../src-main/engine/util/rng';

// The real runs train on wasm, which has fewer gradient kernels than 'cpu': the heads must
// train there, and deterministically.
beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
});

describe('trainFast on the wasm backend', () => {
  it('trains (every gradient exists on wasm) and gives bit-identical scores for the same seed', async () => {
    expect(tf.getBackend()).toBe('wasm');
    const rng = new Rng(21);
    const spec = { side: 7, channels: 16 };
    const normals = Array.from({ length: 16 }, () => normalFeatures(rng, spec));
    const data: FastTrainData = {
      normals,
      anomalies: [withDefect(rng, normalFeatures(rng, spec), { from: 0, to: 4 })],
      pseudo: normals.map((n) => [withDefect(rng, n, { from: 4, to: 8 })]),
    };
    const test = [normalFeatures(rng, spec), withDefect(rng, normalFeatures(rng, spec), { from: 0, to: 4 })];
    const settings = resolveSettings({
      seed: 8,
      steps: 10,
      learningRate: 3e-3,
      batchNormals: 8,
      batchAnomalies: 4,
      residualReduce: 8,
      residualWidth: 8,
      normalityWidth: 16,
      knnHead: true,
    });
    const a = scoreFeatures(await trainFast(data, settings), test).map((s) => s.total);
    const b = scoreFeatures(await trainFast(data, settings), test).map((s) => s.total);
    expect(a.every(Number.isFinite)).toBe(true);
    expect(b).toEqual(a);
  });
});
