/**
 * Input normalisation of a backbone, as a tensor function (inference) and as a layer (so the
 * trainable model of full mode takes raw 0..255 RGB like `features`).
 */
import * as tf from '@tensorflow/tfjs';

/** y = (x - mean) / std per RGB channel, x in 0..255. */
export interface Normalization {
  mean: [number, number, number];
  std: [number, number, number];
}

/** MobileNet (TF slim / Keras): x / 127.5 - 1. */
export const MOBILENET_NORMALIZATION: Normalization = {
  mean: [127.5, 127.5, 127.5],
  std: [127.5, 127.5, 127.5],
};

/** ImageNet statistics of torchvision models, on the 0..255 scale. */
export const IMAGENET_NORMALIZATION: Normalization = {
  mean: [0.485 * 255, 0.456 * 255, 0.406 * 255],
  std: [0.229 * 255, 0.224 * 255, 0.225 * 255],
};

export function normalize(x: tf.Tensor4D, n: Normalization): tf.Tensor4D {
  return tf.tidy(() => {
    const scale = tf.tensor1d(n.std.map((s) => 1 / s));
    const offset = tf.tensor1d(n.mean.map((m, i) => -m / n.std[i]!));
    return tf.add(tf.mul(x, scale), offset) as tf.Tensor4D;
  });
}

interface PixelNormalizeArgs {
  mean: number[];
  std: number[];
  name?: string;
}

/** A weightless layer applying `normalize`; serialisable so saved full-mode models reload. */
export class PixelNormalize extends tf.layers.Layer {
  static readonly className = 'SwanPixelNormalize';
  private readonly mean: number[];
  private readonly std: number[];

  constructor(args: PixelNormalizeArgs) {
    super({ name: args.name });
    this.mean = args.mean;
    this.std = args.std;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    return normalize(x as tf.Tensor4D, {
      mean: this.mean as Normalization['mean'],
      std: this.std as Normalization['std'],
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), mean: this.mean, std: this.std };
  }
}
tf.serialization.registerClass(PixelNormalize);
