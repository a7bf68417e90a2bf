import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src-main/engine/backend';
import {
  backboneSpecFor,
  backboneFromModel,
  buildResnet18,
  fileSystemSaver,
  loadBackbone,
  RESNET18_FEATURE_LAYER,
  RESNET18_ID,
} from '../../../src-main/engine/backbone';
import { IMAGENET_NORMALIZATION } from '../../../src-main/engine/backbone/normalize';
import { EngineError } from '../../../src-main/engine/types';

/** Random BatchNorm statistics, so that folding them into the convolutions is really tested. */
function randomizeBatchNorm(model: tf.LayersModel): void {
  let seed = 1;
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const [gamma, beta, mean, variance] = layer.getWeights() as tf.Tensor1D[];
    const c = gamma!.shape[0];
    layer.setWeights([
      tf.randomUniform([c], 0.5, 1.5, 'float32', seed++),
      tf.randomNormal([c], 0, 0.1, 'float32', seed++),
      tf.randomNormal([c], 0, 0.1, 'float32', seed++),
      tf.randomUniform([c], 0.5, 2, 'float32', seed++),
    ]);
    void beta;
    void mean;
    void variance;
  }
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

describe('ResNet-18 backbone (random weights)', () => {
  let dir: string;
  let model: tf.LayersModel;

  beforeAll(async () => {
    await initBackend({ prefer: 'wasm' });
    dir = await mkdtemp(path.join(os.tmpdir(), 'swan-resnet-'));
    model = buildResnet18();
    randomizeBatchNorm(model);
  });
  afterAll(async () => {
    model?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('has the paper layout: 11.2 M parameters, layer4 = 512 channels at stride 32', () => {
    // torchvision resnet18 without fc has 11,176,512 trainable parameters; Keras also counts
    // the 4,800 BatchNorm moving means and variances.
    const trainable = model.trainableWeights.reduce((n, w) => n + w.shape.reduce((a, b) => a! * b!, 1)!, 0);
    expect(trainable).toBe(11_176_512);
    expect(model.countParams()).toBe(11_176_512 + 2 * 4_800);
    const bb = backboneFromModel({
      id: RESNET18_ID,
      inputSize: 448,
      featureLayer: RESNET18_FEATURE_LAYER,
      model,
      normalization: IMAGENET_NORMALIZATION,
    });
    expect(bb).toMatchObject({ channels: 512, stride: 32, inference: 'fused' });
  });

  it('saves in layers format, loads back with identical features at 224 and 448', async () => {
    const bb = backboneFromModel({
      id: RESNET18_ID,
      inputSize: 448,
      featureLayer: RESNET18_FEATURE_LAYER,
      model,
      normalization: IMAGENET_NORMALIZATION,
    });
    const saved = path.join(dir, 'resnet18');
    await model.save(fileSystemSaver(saved));
    const loaded = await loadBackbone({
      id: RESNET18_ID,
      modelDir: saved,
      featureLayer: 'layer4',
      inputSize: 448,
    });
    expect(loaded.inference).toBe('fused');

    const x224 = tf.randomUniform([2, 224, 224, 3], 0, 255, 'float32', 11) as tf.Tensor4D;
    const x448 = tf.randomUniform([1, 448, 448, 3], 0, 255, 'float32', 12) as tf.Tensor4D;
    const a224 = bb.features(x224);
    const b224 = loaded.features(x224);
    const a448 = loaded.features(x448);
    expect(a224.shape).toEqual([2, 7, 7, 512]);
    expect(a448.shape).toEqual([1, 14, 14, 512]);
    expect(maxAbsDiff(a224, b224)).toBe(0);
    // The fused path agrees with the layers model, BatchNorm folded or not.
    const ref = loaded.layersModel().predict(x224) as tf.Tensor;
    const scale = tf.max(tf.abs(ref)).dataSync()[0]!;
    expect(scale).toBeGreaterThan(0);
    expect(maxAbsDiff(b224, ref) / scale).toBeLessThan(1e-4);
    tf.dispose([x224, x448, a224, b224, a448, ref]);
    loaded.dispose();
  });

  it('is selectable by name once its weights folder exists (SWAN_RESNET18_DIR), and says where it looked when not', async () => {
    const saved = path.join(dir, 'resnet18-selectable');
    await model.save(fileSystemSaver(saved));
    const before = process.env.SWAN_RESNET18_DIR;
    try {
      process.env.SWAN_RESNET18_DIR = saved;
      const spec = backboneSpecFor('resnet18', { inputSize: 224 });
      expect(spec).toMatchObject({
        id: RESNET18_ID,
        modelDir: saved,
        featureLayer: 'layer4',
        pooledLayer: 'layer3',
      });
      const bb = await loadBackbone(spec);
      expect(bb).toMatchObject({ channels: 512, stride: 32 });
      bb.dispose();
      process.env.SWAN_RESNET18_DIR = path.join(dir, 'absent');
      await expect(loadBackbone(backboneSpecFor('resnet18'))).rejects.toThrow(
        /resnet18: model folder not found \(looked in .*absent\)/,
      );
    } finally {
      if (before === undefined) delete process.env.SWAN_RESNET18_DIR;
      else process.env.SWAN_RESNET18_DIR = before;
    }
  });

  it('refuses a model.json whose layers do not match ResNet-18', async () => {
    const other = tf.sequential({
      layers: [tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 4, kernelSize: 3, name: 'conv1' })],
    });
    const wrong = path.join(dir, 'wrong');
    await other.save(fileSystemSaver(wrong));
    other.dispose();
    const err = await loadBackbone({
      id: RESNET18_ID,
      modelDir: wrong,
      featureLayer: 'layer4',
      inputSize: 224,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect((err as Error).message).toMatch(/does not match ResNet-18: its layers differ/);
    expect((err as Error).message).toContain('conv1/kernel is 3x3x3x4, expected 7x7x3x64');
  });

  it('refuses weight files shorter than model.json says', async () => {
    const saved = path.join(dir, 'resnet18');
    const cut = path.join(dir, 'cut');
    await model.save(fileSystemSaver(cut));
    const w = await readFile(path.join(saved, 'weights.bin'));
    await writeFile(path.join(cut, 'weights.bin'), w.subarray(0, 1000));
    await expect(
      loadBackbone({ id: RESNET18_ID, modelDir: cut, featureLayer: 'layer4', inputSize: 224 }),
    ).rejects.toThrow(/hold 1000 bytes/);
  });
});
