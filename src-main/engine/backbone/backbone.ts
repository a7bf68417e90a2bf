/**
 * A frozen CNN backbone wrapped for the engine: fast fused inference for features, the layers
 * model for full-mode fine-tuning, and shape facts (channels, stride) measured at load.
 */
import * as tf from '@tensorflow/tfjs';
import { EngineError, type BackboneSpec } from '../types';
import { compileFused } from './fused-tfjs';
import { normalize, PixelNormalize, type Normalization } from './normalize';

export interface Backbone {
  id: string;
  inputSize: number;
  featureLayer: string;
  /** Channels of the feature map. */
  channels: number;
  /** Input pixels per feature-map cell (32 for the last stage). */
  stride: number;
  /** 'fused': BatchNorm folded into fused conv ops (fast); 'layers': the layers model. */
  inference: 'fused' | 'layers';
  /** NHWC float RGB in 0..255 (any size) -> feature map; normalisation is done inside. */
  features(x: tf.Tensor4D): tf.Tensor4D;
  /** Layer whose statistics featuresPooled returns (BackboneSpec.pooledLayer), if any. */
  pooledLayer?: string;
  /**
   * The feature map and, from the same pass, the pooled layer's per-channel mean then
   * standard deviation over the image, [N, 2c]. Only when pooledLayer is set.
   */
  featuresPooled(x: tf.Tensor4D): [tf.Tensor4D, tf.Tensor2D];
  /** Further layers whose maps featuresTapped returns (BackboneSpec.tapLayers), in order. */
  tapLayers: string[];
  /**
   * One pass: the feature map, the pooled statistics (when asked and pooledLayer is set) and
   * the maps of tapLayers.
   */
  featuresTapped(
    x: tf.Tensor4D,
    withPooled: boolean,
  ): { map: tf.Tensor4D; pooled?: tf.Tensor2D; taps: tf.Tensor4D[] };
  /**
   * Trainable model, raw 0..255 RGB (any size) -> feature layer, sharing the backbone's
   * variables (normalisation is its first layer). For full-mode fine-tuning.
   */
  layersModel(): tf.LayersModel;
  /**
   * Refolds the fused inference ops from the current weights. `features` uses weights folded
   * at load time, so after fine-tuning `layersModel()` call this to see the new weights.
   */
  sync(): void;
  /** ImageNet class probabilities (MobileNet only; the input is resized to 224). */
  classify?(x: tf.Tensor4D): tf.Tensor2D;
  dispose(): void;
}

export interface BackboneParts {
  id: string;
  inputSize: number;
  featureLayer: string;
  pooledLayer?: string;
  tapLayers?: string[];
  /** The whole network, input shape [null, null, null, 3], taking normalised input. */
  model: tf.LayersModel;
  normalization: Normalization;
  /** Name of the ImageNet softmax output layer, when the model keeps its classifier. */
  classifierOutput?: string;
}

/**
 * backboneFromModel for a loader: the spec's layers, and the model disposed when the backbone
 * cannot be made (an unknown layer), so a failed load leaks nothing.
 */
export function backboneOfSpec(
  spec: BackboneSpec,
  parts: Omit<BackboneParts, 'id' | 'inputSize' | 'featureLayer' | 'pooledLayer' | 'tapLayers'>,
): Backbone {
  try {
    return backboneFromModel({
      id: spec.id,
      inputSize: spec.inputSize,
      featureLayer: spec.featureLayer,
      pooledLayer: spec.pooledLayer,
      tapLayers: spec.tapLayers,
      ...parts,
    });
  } catch (err) {
    parts.model.dispose();
    throw err;
  }
}

/** Stride is measured on a small probe: robust to any padding scheme of the graph. */
const PROBE = 64;

export function backboneFromModel(parts: BackboneParts): Backbone {
  const { model, featureLayer, normalization } = parts;
  const layer = model.layers.find((l) => l.name === featureLayer);
  if (!layer) {
    const names = model.layers
      .map((l) => l.name)
      .filter((n) => /relu|layer\d$/.test(n))
      .slice(-6);
    throw new EngineError(`Backbone '${parts.id}' has no layer '${featureLayer}' (e.g. ${names.join(', ')})`);
  }
  const { pooledLayer } = parts;
  const tapLayers = parts.tapLayers ?? [];
  for (const name of [...(pooledLayer === undefined ? [] : [pooledLayer]), ...tapLayers]) {
    if (!model.layers.some((l) => l.name === name)) {
      throw new EngineError(
        `Backbone '${parts.id}' has no layer '${name}' to ${name === pooledLayer ? 'pool' : 'tap'}`,
      );
    }
  }
  // One pass serves every output: the pooled layer first, then the taps.
  const extra = [...(pooledLayer === undefined ? [] : [pooledLayer]), ...tapLayers];
  let fused = compileFused(model, featureLayer, extra);
  const truncated = tf.model({ inputs: model.inputs, outputs: layer.output as tf.SymbolicTensor });
  const tapped =
    extra.length > 0
      ? tf.model({
          inputs: model.inputs,
          outputs: [layer, ...extra.map((n) => model.getLayer(n))].map((l) => l.output as tf.SymbolicTensor),
        })
      : null;
  const run = (x: tf.Tensor4D): tf.Tensor4D =>
    tf.tidy(() => {
      const n = normalize(x, normalization);
      return fused ? fused.run(n) : (truncated.predict(n) as tf.Tensor4D);
    });
  const runAll = (
    x: tf.Tensor4D,
    withPooled: boolean,
  ): { map: tf.Tensor4D; pooled?: tf.Tensor2D; taps: tf.Tensor4D[] } => {
    if (!tapped) return { map: run(x), taps: [] };
    const pooling = withPooled && pooledLayer !== undefined;
    const outs: tf.Tensor[] = tf.tidy(() => {
      const n = normalize(x, normalization);
      const [m, ...rest] = fused ? fused.runTapped(n) : (tapped.predict(n) as tf.Tensor4D[]);
      const t = pooledLayer === undefined ? null : rest.shift()!;
      if (!pooling || !t) return [m!, ...rest];
      const { mean, variance } = tf.moments(t, [1, 2]);
      return [m!, tf.concat([mean, tf.sqrt(variance)], 1), ...rest];
    });
    const map = outs.shift() as tf.Tensor4D;
    const pooled = pooling ? (outs.shift() as tf.Tensor2D) : undefined;
    return { map, ...(pooled ? { pooled } : {}), taps: outs as tf.Tensor4D[] };
  };
  const runPooled = (x: tf.Tensor4D): [tf.Tensor4D, tf.Tensor2D] => {
    if (pooledLayer === undefined) throw new EngineError(`Backbone '${parts.id}' has no pooled layer`);
    const { map, pooled, taps } = runAll(x, true);
    tf.dispose(taps);
    return [map, pooled!];
  };
  const probe = tf.tidy(() => run(tf.zeros([1, PROBE, PROBE, 3])));
  const [, h, , channels] = probe.shape;
  probe.dispose();
  const stride = Math.round(PROBE / h);

  let trainable: tf.LayersModel | null = null;
  const backbone: Backbone = {
    id: parts.id,
    inputSize: parts.inputSize,
    featureLayer,
    channels,
    stride,
    inference: fused ? 'fused' : 'layers',
    features: run,
    pooledLayer,
    featuresPooled: runPooled,
    tapLayers,
    featuresTapped: runAll,
    layersModel() {
      if (!trainable) {
        const input = tf.input({ shape: [null, null, 3] });
        const norm = new PixelNormalize({
          name: 'swan_normalize',
          mean: [...normalization.mean],
          std: [...normalization.std],
        });
        const out = truncated.apply(norm.apply(input)) as tf.SymbolicTensor;
        trainable = tf.model({ inputs: input, outputs: out, name: `${parts.id}_features` });
      }
      return trainable;
    },
    sync() {
      if (!fused) return;
      fused.dispose();
      fused = compileFused(model, featureLayer, extra);
    },
    dispose() {
      fused?.dispose();
      model.dispose();
    },
  };
  if (parts.classifierOutput) {
    const out = model.getLayer(parts.classifierOutput).output as tf.SymbolicTensor;
    const classifier = tf.model({ inputs: model.inputs, outputs: out });
    backbone.classify = (x: tf.Tensor4D): tf.Tensor2D =>
      tf.tidy(() => {
        const sized = x.shape[1] === 224 && x.shape[2] === 224 ? x : tf.image.resizeBilinear(x, [224, 224]);
        const p = classifier.predict(normalize(sized, normalization)) as tf.Tensor;
        return p.reshape([x.shape[0], -1]) as tf.Tensor2D;
      });
  }
  return backbone;
}
