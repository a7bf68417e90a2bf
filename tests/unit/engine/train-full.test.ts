import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RgbImage } from '../../../src-main/data/types';
import { scoreFeatures } from '../../../src-main/engine/infer';
import { applyBackboneWeights, extractFeatures, trainFull } from '../../../src-main/engine/train/train-full';
import { resolveSettings } from '../../../src-main/engine/settings';
import type { TrainProgress } from '../../../src-main/engine/types';
import { Rng } from '../../../src-main/engine/util/rng';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function image(rng: Rng, defect: boolean): RgbImage {
  const size = 16;
  const data = new Uint8Array(size * size * 3);
  for (let i = 0; i < data.length; i++) data[i] = 100 + rng.int(40);
  if (defect) {
    const y0 = rng.int(12);
    const x0 = rng.int(12);
    for (let y = y0; y < y0 + 4; y++)
      for (let x = x0; x < x0 + 4; x++) data.set([250, 20, 20], (y * size + x) * 3);
  }
  return { width: size, height: size, data };
}

/** A tiny conv backbone: 16x16x3 (0..255) -> 4x4x6, 8x8 -> 2x2 at the half-size level. */
function tinyBackbone(): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const model = tf.sequential();
  model.add(
    tf.layers.conv2d({
      inputShape: [null, null, 3],
      filters: 6,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: init(1),
    }),
  );
  model.add(
    tf.layers.conv2d({
      filters: 6,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: init(2),
    }),
  );
  // Inputs are 0..255: scale the first layer's weights down so activations stay moderate.
  const [k, b] = model.layers[0].getWeights();
  model.layers[0].setWeights([tf.div(k, 128), b]);
  return model;
}

const settings = resolveSettings({
  seed: 2,
  mode: 'full',
  steps: 30,
  // Few steps, and the step decay cuts lr tenfold after a third of them: start high.
  learningRate: 5e-2,
  batchNormals: 4,
  batchAnomalies: 2,
  referenceCount: 2,
  residualReduce: 3,
  residualWidth: 3,
  normalityWidth: 4,
  knnHead: true,
});

describe('trainFull (backbone fine-tuned)', () => {
  it('refuses a non-native backend unless allowed', async () => {
    const rng = new Rng(1);
    await expect(
      trainFull(
        { normals: [image(rng, false)], anomalies: [] },
        { model: tinyBackbone(), inputSize: 16 },
        settings,
      ),
    ).rejects.toThrow(/needs the native TensorFlow backend.*current backend is 'cpu'/);
  });

  it('trains heads and backbone together: losses fall, backbone weights change, the state scores', async () => {
    const rng = new Rng(3);
    const normals = Array.from({ length: 6 }, () => image(rng, false));
    const anomalies = [image(rng, true), image(rng, true)];
    const model = tinyBackbone();
    const before = model.getWeights().map((w) => Array.from(w.dataSync()));
    const progress: TrainProgress[] = [];
    const state = await trainFull({ normals, anomalies }, { model, inputSize: 16 }, settings, {
      allowSlowBackend: true,
      onProgress: (p) => progress.push(p),
    });
    const train = progress.filter((p) => p.stage === 'train');
    expect(train).toHaveLength(30);
    // Per-step losses are noisy (random batches, fresh prior draws): compare the ends on average.
    const sum = (ps: TrainProgress[]) =>
      ps.reduce((t, p) => t + Object.values(p.losses!).reduce((a, b) => a + b, 0), 0);
    expect(sum(train.slice(-5))).toBeLessThan(0.8 * sum(train.slice(0, 5)));
    const after = model.getWeights().map((w) => Array.from(w.dataSync()));
    expect(after[0]).not.toEqual(before[0]);
    expect(state.backbone).toHaveLength(4);
    expect(state.levels).toEqual([
      { h: 4, w: 4, c: 6 },
      { h: 2, w: 2, c: 6 },
    ]);

    // A fresh backbone with the stored weights reproduces the features, hence the scores.
    const fresh = tinyBackbone();
    applyBackboneWeights(fresh, state);
    const test = [image(rng, false), image(rng, true)];
    const a = scoreFeatures(state, extractFeatures({ model, inputSize: 16 }, test, 2)).map((s) => s.total);
    const b = scoreFeatures(state, extractFeatures({ model: fresh, inputSize: 16 }, test, 2)).map(
      (s) => s.total,
    );
    expect(b).toEqual(a);
    expect(a.every(Number.isFinite)).toBe(true);
  });

  it('outlier exposure draws the pseudo anomalies from the given images, and refuses none', async () => {
    const rng = new Rng(5);
    const normals = Array.from({ length: 4 }, () => image(rng, false));
    const outliers = [image(rng, true)];
    const oe = { ...settings, steps: 3, pseudo: 'outlier' as const };
    const state = await trainFull(
      { normals, anomalies: [], outliers },
      { model: tinyBackbone(), inputSize: 16 },
      oe,
      {
        allowSlowBackend: true,
      },
    );
    expect(state.settings.pseudo).toBe('outlier');
    await expect(
      trainFull({ normals, anomalies: [] }, { model: tinyBackbone(), inputSize: 16 }, oe, {
        allowSlowBackend: true,
      }),
    ).rejects.toThrow(/'outlier' need images of another data set/);
  });
});
