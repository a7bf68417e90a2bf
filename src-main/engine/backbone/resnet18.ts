/**
 * ResNet-18 (He et al. 2016), the DRA paper's backbone, up to layer4, as a tf.layers model.
 *
 * Layout and padding follow torchvision exactly (explicit zero padding + 'valid' convs, since
 * TF's 'same' pads asymmetrically on stride 2), so weights converted from torchvision's
 * resnet18 load unchanged. Weight names, for such a conversion (kernels HWIO):
 *   conv1/kernel, bn1/{gamma,beta,moving_mean,moving_variance},
 *   layer{1..4}_{0,1}_conv{1,2}/kernel, layer{1..4}_{0,1}_bn{1,2}/...,
 *   layer{2..4}_0_downsample_conv/kernel, layer{2..4}_0_downsample_bn/...
 * The outputs of the stages are the layers 'layer1' .. 'layer4' (448 -> layer4 14x14x512).
 * No ImageNet weights ship with the app: a user supplies them as a TF.js layers folder.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackboneSpec } from '../types';
import { EngineError } from '../types';
import { backboneOfSpec, type Backbone } from './backbone';
import { assertModelDir, readModelArtifacts } from './fs-io';
import { IMAGENET_NORMALIZATION } from './normalize';

export const RESNET18_ID = 'resnet18';
export const RESNET18_FEATURE_LAYER = 'layer4';

type T = tf.SymbolicTensor;

// PyTorch BatchNorm: eps 1e-5, momentum 0.1 (Keras counts momentum the other way).
const bn = (name: string) => tf.layers.batchNormalization({ name, axis: -1, epsilon: 1e-5, momentum: 0.9 });

function conv(name: string, filters: number, kernel: number, stride: number, x: T): T {
  const pad = kernel === 1 ? 0 : Math.floor(kernel / 2);
  const padded = pad > 0 ? (tf.layers.zeroPadding2d({ name: `${name}_pad`, padding: pad }).apply(x) as T) : x;
  return tf.layers
    .conv2d({ name, filters, kernelSize: kernel, strides: stride, padding: 'valid', useBias: false })
    .apply(padded) as T;
}

function basicBlock(prefix: string, x: T, filters: number, stride: number, outName: string): T {
  let y = conv(`${prefix}_conv1`, filters, 3, stride, x);
  y = bn(`${prefix}_bn1`).apply(y) as T;
  y = tf.layers.reLU({ name: `${prefix}_relu1` }).apply(y) as T;
  y = conv(`${prefix}_conv2`, filters, 3, 1, y);
  y = bn(`${prefix}_bn2`).apply(y) as T;
  let shortcut = x;
  const inC = x.shape[x.shape.length - 1];
  if (stride !== 1 || inC !== filters) {
    shortcut = conv(`${prefix}_downsample_conv`, filters, 1, stride, x);
    shortcut = bn(`${prefix}_downsample_bn`).apply(shortcut) as T;
  }
  const sum = tf.layers.add({ name: `${prefix}_add` }).apply([y, shortcut]) as T;
  return tf.layers.reLU({ name: outName }).apply(sum) as T;
}

/** The architecture with fresh (random) weights; input: normalised RGB of any size. */
export function buildResnet18(): tf.LayersModel {
  const input = tf.input({ shape: [null, null, 3], name: 'input' });
  let x = conv('conv1', 64, 7, 2, input);
  x = bn('bn1').apply(x) as T;
  x = tf.layers.reLU({ name: 'relu' }).apply(x) as T;
  // Zero padding equals torchvision's -inf padding here: the input is post-ReLU (>= 0).
  x = tf.layers.zeroPadding2d({ name: 'maxpool_pad', padding: 1 }).apply(x) as T;
  x = tf.layers.maxPooling2d({ name: 'maxpool', poolSize: 3, strides: 2, padding: 'valid' }).apply(x) as T;
  const widths = [64, 128, 256, 512];
  widths.forEach((filters, i) => {
    const stage = `layer${i + 1}`;
    x = basicBlock(`${stage}_0`, x, filters, i === 0 ? 1 : 2, `${stage}_0_out`);
    x = basicBlock(`${stage}_1`, x, filters, 1, stage);
  });
  return tf.model({ inputs: input, outputs: x, name: RESNET18_ID });
}

/**
 * Loads weights saved in TF.js layers format into the architecture above. The weights are
 * matched by name and shape; any difference is reported (first few) as an EngineError.
 */
export async function loadResnet18Weights(model: tf.LayersModel, dir: string): Promise<void> {
  assertModelDir(dir, 'ResNet-18 weights');
  const artifacts = await readModelArtifacts(dir);
  const specs = artifacts.weightSpecs ?? [];
  const expected = new Map<string, number[]>();
  for (const w of model.weights) expected.set(w.originalName, w.shape as number[]);
  const given = new Map(specs.map((s) => [s.name, s.shape] as const));
  const problems: string[] = [];
  for (const [name, shape] of expected) {
    const g = given.get(name);
    if (!g) problems.push(`missing ${name}`);
    else if (g.join('x') !== shape.join('x'))
      problems.push(`${name} is ${g.join('x')}, expected ${shape.join('x')}`);
  }
  for (const name of given.keys()) if (!expected.has(name)) problems.push(`unexpected ${name}`);
  if (problems.length > 0) {
    throw new EngineError(
      `The model in ${dir} does not match ResNet-18: its layers differ (${problems.length} problems: ` +
        `${problems.slice(0, 5).join('; ')}${problems.length > 5 ? '; ...' : ''})`,
    );
  }
  const tensors = tf.io.decodeWeights(artifacts.weightData!, specs);
  try {
    model.loadWeights(tensors, true);
  } finally {
    tf.dispose(Object.values(tensors));
  }
}

export async function loadResnet18(spec: BackboneSpec): Promise<Backbone> {
  const model = buildResnet18();
  try {
    await loadResnet18Weights(model, spec.modelDir);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return backboneOfSpec(spec, { model, normalization: IMAGENET_NORMALIZATION });
}
