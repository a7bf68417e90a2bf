/**
 * A loaded feature network on one runtime: TF.js (the Backbone, any backend) or onnxruntime
 * (backbone/onnx-runtime.ts). FeatureComputer only sees this interface, so both runtimes feed
 * the same pyramid, pooled statistics, taps and cache.
 */
import * as tf from '@tensorflow/tfjs';
import type { Backbone } from '../backbone';
import type { FeatureMap } from '../types';

export interface NetOutput {
  maps: FeatureMap[];
  /** Per image: the pooled layer's per-channel mean then standard deviation (level 0 only). */
  pooled?: Float32Array[];
  /** Per image: the tap layers' maps by name (level 0 only). */
  taps?: Record<string, FeatureMap>[];
}

export interface FeatureNet {
  inputSize: number;
  pooledLayer?: string;
  tapLayers: string[];
  /** n same-size images, NHWC RGB 0..255; at level 0 also the pooled statistics and the taps. */
  forward(pixels: Float32Array, n: number, h: number, w: number, levelZero: boolean): Promise<NetOutput>;
  dispose(): void;
}

/** A batch's [N, h, w, c] values as one HWC map per image, each with its own buffer. */
export function splitBatch(all: Float32Array, dims: readonly number[]): FeatureMap[] {
  const [n, h, w, c] = dims as [number, number, number, number];
  const per = h * w * c;
  return Array.from({ length: n }, (_, k) => ({ h, w, c, data: all.slice(k * per, (k + 1) * per) }));
}

/** Rows of an [N, d] matrix, each with its own buffer. */
export function splitRows(all: Float32Array, n: number): Float32Array[] {
  const d = all.length / n;
  return Array.from({ length: n }, (_, k) => all.slice(k * d, (k + 1) * d));
}

/** The tensor's values as one HWC map per image; disposes it. */
function take(t: tf.Tensor4D): FeatureMap[] {
  const shape = t.shape;
  const data = t.dataSync() as Float32Array;
  t.dispose();
  return splitBatch(data, shape);
}

export function tfjsFeatureNet(backbone: Backbone): FeatureNet {
  return {
    inputSize: backbone.inputSize,
    pooledLayer: backbone.pooledLayer,
    tapLayers: backbone.tapLayers,
    forward(pixels, n, h, w, levelZero) {
      const x = tf.tensor4d(pixels, [n, h, w, 3]);
      let out: { map: tf.Tensor4D; pooled?: tf.Tensor2D; taps: tf.Tensor4D[] };
      try {
        out = levelZero
          ? backbone.featuresTapped(x, backbone.pooledLayer !== undefined)
          : { map: backbone.features(x), taps: [] };
      } finally {
        x.dispose();
      }
      const maps = take(out.map);
      const perTap = out.taps.map(take);
      const taps =
        perTap.length > 0
          ? maps.map((_, k) =>
              Object.fromEntries(backbone.tapLayers.map((name, j) => [name, perTap[j]![k]!])),
            )
          : undefined;
      let pooled: Float32Array[] | undefined;
      if (out.pooled) {
        pooled = splitRows(out.pooled.dataSync() as Float32Array, n);
        out.pooled.dispose();
      }
      return Promise.resolve({ maps, ...(pooled ? { pooled } : {}), ...(taps ? { taps } : {}) });
    },
    dispose: () => backbone.dispose(),
  };
}
