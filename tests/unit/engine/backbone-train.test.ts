import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src-main/engine/backend';
import {
  defaultBackboneSpec,
  fileSystemLoader,
  fileSystemSaver,
  loadBackbone,
  type Backbone,
} from '../../../src-main/engine/backbone';

const spec = defaultBackboneSpec(224, 'conv_pw_13_relu');

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}
const haveWeights = existsSync(path.join(spec.modelDir, 'model.json'));

// Full-mode fine-tuning needs the conv filter gradients, which only the cpu (and native)
// backends have; a 32x32 input keeps the pure-JS backend quick.
describe.skipIf(!haveWeights)('trainable backbone model (cpu backend)', () => {
  let bb: Backbone;
  let dir: string;
  beforeAll(async () => {
    await initBackend({ prefer: 'cpu' });
    bb = await loadBackbone(spec);
    dir = await mkdtemp(path.join(os.tmpdir(), 'swan-bb-train-'));
  });
  afterAll(async () => {
    bb?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('has gradients down to the first convolution and learns', () => {
    const model = bb.layersModel();
    expect(model.trainableWeights.length).toBeGreaterThan(50);
    const x = tf.randomUniform([2, 32, 32, 3], 0, 255, 'float32', 1) as tf.Tensor4D;
    const loss = () => tf.mean(model.apply(x) as tf.Tensor) as tf.Scalar;
    const before = loss().dataSync()[0]!;
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const { grads } = tf.variableGrads(loss, vars);
    const conv1 = Object.keys(grads).find((k) => k.startsWith('conv1/kernel'))!;
    expect(tf.norm(grads[conv1]!).dataSync()[0]).toBeGreaterThan(0);
    const stale = bb.features(x);
    tf.train.sgd(0.05).applyGradients(grads);
    expect(loss().dataSync()[0]).toBeLessThan(before);

    // The fused inference path folded the old weights until sync().
    const trained = model.predict(x) as tf.Tensor;
    expect(maxAbsDiff(bb.features(x), stale)).toBe(0);
    bb.sync();
    const synced = bb.features(x);
    expect(maxAbsDiff(synced, stale)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(synced, trained)).toBeLessThan(1e-4);
    tf.dispose([x, stale, trained, synced, ...Object.values(grads)]);
  });

  it('saves and reloads with its normalisation layer', async () => {
    const model = bb.layersModel();
    const x = tf.randomUniform([1, 32, 32, 3], 0, 255, 'float32', 2) as tf.Tensor4D;
    await model.save(fileSystemSaver(path.join(dir, 'full')));
    const back = await tf.loadLayersModel(fileSystemLoader(path.join(dir, 'full')));
    const a = model.predict(x) as tf.Tensor;
    const b = back.predict(x) as tf.Tensor;
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeLessThan(1e-5);
    tf.dispose([x, a, b]);
    back.dispose();
  });
});
