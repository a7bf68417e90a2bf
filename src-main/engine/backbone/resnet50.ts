/**
 * ResNet-50 v2 stages 1-3 (resnet50-net.ts) as a TF.js layers model with the `.npy` weights,
 * wrapped as a Backbone (BatchNorm folded into the convolutions by fuse.ts where it follows
 * one). Stride-2 layers pad explicitly and convolve 'valid': TF's 'same' pads them
 * asymmetrically and would not match the reference outputs.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackboneSpec } from '../types';
import { backboneOfSpec, type Backbone } from './backbone';
import { IMAGENET_NORMALIZATION } from './normalize';
import {
  loadResnet50Weights,
  NET_INPUT,
  RESNET50_BN_EPSILON,
  RESNET50_ID,
  resnet50Ops,
  type NetOp,
  type Resnet50Weights,
} from './resnet50-net';

type T = tf.SymbolicTensor;

function layerFor(o: NetOp, values: Map<string, T>, weights: Resnet50Weights): T {
  const x = o.op === 'add' ? null : values.get(o.input)!;
  switch (o.op) {
    case 'bn':
      return tf.layers
        .batchNormalization({ name: o.output, axis: -1, epsilon: RESNET50_BN_EPSILON })
        .apply(x!) as T;
    case 'relu':
      return tf.layers.reLU({ name: o.output }).apply(x!) as T;
    case 'add':
      return tf.layers.add({ name: o.output }).apply(o.inputs.map((i) => values.get(i)!)) as T;
    case 'avgpool':
      // TF's 'same' at stride = kernel pads only after the last cell and leaves the padding
      // out of the mean: the window past the edge averages the cells it covers.
      return tf.layers
        .averagePooling2d({ name: o.output, poolSize: o.kernel, strides: o.kernel, padding: 'same' })
        .apply(x!) as T;
    case 'conv':
    case 'maxpool': {
      // Stride 1 with an odd kernel: 'same' is symmetric, and saves a pad op.
      const explicit = o.pad > 0 && o.stride > 1;
      const padded = explicit
        ? (tf.layers.zeroPadding2d({ name: `${o.output}_pad`, padding: o.pad }).apply(x!) as T)
        : x!;
      const padding = explicit || o.pad === 0 ? 'valid' : 'same';
      if (o.op === 'maxpool') {
        // Zero padding equals -inf padding here: the input is post-ReLU (>= 0).
        return tf.layers
          .maxPooling2d({ name: o.output, poolSize: o.kernel, strides: o.stride, padding })
          .apply(padded) as T;
      }
      return tf.layers
        .conv2d({
          name: o.output,
          filters: weights.conv.get(o.name)!.shape[0],
          kernelSize: o.kernel,
          strides: o.stride,
          padding,
          useBias: false,
        })
        .apply(padded) as T;
    }
  }
}

/** The network with the given weights; input: ImageNet-normalised RGB of any size, NHWC. */
export function buildResnet50(weights: Resnet50Weights): tf.LayersModel {
  const input = tf.input({ shape: [null, null, 3], name: NET_INPUT });
  const values = new Map<string, T>([[NET_INPUT, input]]);
  const ops = resnet50Ops();
  for (const o of ops) values.set(o.output, layerFor(o, values, weights));
  // Every value no op reads is an output, so that each layer of RESNET50_LAYERS is in the model.
  const read = new Set(ops.flatMap((o) => (o.op === 'add' ? o.inputs : [o.input])));
  const model = tf.model({
    inputs: input,
    outputs: ops.filter((o) => !read.has(o.output)).map((o) => values.get(o.output)!),
    name: RESNET50_ID,
  });
  for (const o of ops) {
    if (o.op === 'conv') {
      const w = weights.conv.get(o.name)!;
      const kernel = tf.tidy(() => tf.transpose(tf.tensor4d(w.data, w.shape), [2, 3, 1, 0]));
      model.getLayer(o.output).setWeights([kernel]);
      kernel.dispose();
    } else if (o.op === 'bn') {
      const p = weights.bn.get(o.name)!;
      const ts = [p.gamma, p.beta, p.mean, p.variance].map((a) => tf.tensor1d(a));
      model.getLayer(o.output).setWeights(ts);
      tf.dispose(ts);
    }
  }
  return model;
}

export async function loadResnet50(spec: BackboneSpec): Promise<Backbone> {
  const weights = await loadResnet50Weights(spec.modelDir);
  return backboneOfSpec(spec, { model: buildResnet50(weights), normalization: IMAGENET_NORMALIZATION });
}
