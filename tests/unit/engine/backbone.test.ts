import { existsSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src-main/engine/backend';
import { defaultBackboneSpec, loadBackbone, type Backbone } from '../../../src-main/engine/backbone';
import { EngineError } from '../../../src-main/engine/types';

const spec = defaultBackboneSpec();
const PANDA = path.join(path.dirname(spec.modelDir), 'panda.jpg');
const haveWeights = existsSync(path.join(spec.modelDir, 'model.json'));

async function rgbTensor(file: string, size: number): Promise<tf.Tensor4D> {
  const { data } = await sharp(file)
    .resize(size, size, { fit: 'fill' })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return tf.tensor4d(new Float32Array(data), [1, size, size, 3]);
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

describe.skipIf(!haveWeights)('MobileNetV1 backbone (real weights)', () => {
  let bb: Backbone;
  beforeAll(async () => {
    await initBackend({ prefer: 'wasm' });
    bb = await loadBackbone(spec);
  });
  afterAll(() => bb?.dispose());

  it('classifies the panda photo as ImageNet class 388', async () => {
    const x = await rgbTensor(PANDA, 224);
    const p = bb.classify!(x);
    expect(p.shape).toEqual([1, 1000]);
    expect(p.argMax(1).dataSync()[0]).toBe(388);
    expect(p.sum().dataSync()[0]).toBeCloseTo(1, 3);
    tf.dispose([x, p]);
  });

  it('runs fused ops whose output matches the layers model', async () => {
    expect(bb.inference).toBe('fused');
    expect(bb).toMatchObject({ channels: 768, stride: 32, featureLayer: 'conv_pw_13_relu' });
    const x = tf.concat([
      await rgbTensor(PANDA, 224),
      tf.randomUniform([1, 224, 224, 3], 0, 255, 'float32', 7),
    ]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const fast = bb.features(x);
    expect(tf.memory().numTensors).toBe(before + 1); // nothing leaks from the fused path
    const ref = bb.layersModel().predict(x) as tf.Tensor;
    expect(fast.shape).toEqual([2, 7, 7, 768]);
    expect(ref.shape).toEqual(fast.shape);
    expect(maxAbsDiff(fast, ref)).toBeLessThan(1e-3);
    expect(tf.max(ref).dataSync()[0]).toBeGreaterThan(1); // not a degenerate all-zero map
    tf.dispose([x, fast, ref]);
  });

  it('gives stride-32 maps at 448 and accepts other layers', async () => {
    const x = tf.randomUniform([1, 448, 448, 3], 0, 255, 'float32', 3) as tf.Tensor4D;
    const f = bb.features(x);
    expect(f.shape).toEqual([1, 14, 14, 768]);
    // conv_pw_11 has 512 x 0.75 = 384 channels (models/README.md says 768: measured otherwise).
    const bb11 = await loadBackbone(defaultBackboneSpec(448, 'conv_pw_11_relu'));
    expect(bb11).toMatchObject({ inference: 'fused', stride: 16, channels: 384, inputSize: 448 });
    const f11 = bb11.features(x);
    expect(f11.shape).toEqual([1, 28, 28, 384]);
    const ref = bb11.layersModel().predict(x) as tf.Tensor;
    expect(maxAbsDiff(f11, ref)).toBeLessThan(1e-3);
    tf.dispose([x, f, f11, ref]);
    bb11.dispose();
  });

  it('returns the statistics of conv_pw_11 from the same fused pass, as the layers model computes them', async () => {
    expect(bb.pooledLayer).toBe('conv_pw_11_relu');
    const x = tf.randomUniform([2, 224, 224, 3], 0, 255, 'float32', 5) as tf.Tensor4D;
    const [map, pooled] = bb.featuresPooled(x);
    expect(maxAbsDiff(map, bb.features(x))).toBe(0);
    expect(pooled.shape).toEqual([2, 768]);
    const bb11 = await loadBackbone({ ...defaultBackboneSpec(224, 'conv_pw_11_relu') });
    const t = bb11.layersModel().predict(x) as tf.Tensor4D;
    const { mean, variance } = tf.moments(t, [1, 2]);
    const ref = tf.concat([mean, tf.sqrt(variance)], 1);
    expect(maxAbsDiff(pooled, ref)).toBeLessThan(1e-3);
    tf.dispose([x, map, pooled, t, mean, variance, ref]);
    bb11.dispose();
  });

  it('names an unknown layer', async () => {
    await expect(loadBackbone({ ...spec, featureLayer: 'conv_pw_99_relu' })).rejects.toThrow(
      /conv_pw_99_relu/,
    );
  });
});

describe('backbone specs', () => {
  it('defaultBackboneSpec follows SWAN_BACKBONE_DIR, else ../shared/models beside the repo', () => {
    const saved = process.env.SWAN_BACKBONE_DIR;
    try {
      delete process.env.SWAN_BACKBONE_DIR;
      const d = defaultBackboneSpec();
      expect(d).toMatchObject({ id: 'mobilenet_v1_0.75', inputSize: 224, featureLayer: 'conv_pw_13_relu' });
      expect(d.modelDir.endsWith(path.join('shared', 'models', 'mobilenet_v1_0.75_224'))).toBe(true);
      process.env.SWAN_BACKBONE_DIR = '/somewhere/else';
      expect(defaultBackboneSpec(448, 'conv_pw_11_relu')).toMatchObject({
        modelDir: '/somewhere/else',
        inputSize: 448,
        featureLayer: 'conv_pw_11_relu',
      });
    } finally {
      if (saved === undefined) delete process.env.SWAN_BACKBONE_DIR;
      else process.env.SWAN_BACKBONE_DIR = saved;
    }
  });

  it('a missing model folder is an EngineError naming the path', async () => {
    const missing = '/nonexistent/models/mobilenet_v1_0.75_224';
    const err = await loadBackbone({ ...spec, modelDir: missing }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect((err as Error).message).toContain(missing);
  });

  it('an unknown backbone id is refused', async () => {
    await expect(loadBackbone({ ...spec, id: 'vgg16', modelDir: '/' })).rejects.toThrow(
      /Unknown backbone 'vgg16'/,
    );
  });
});
