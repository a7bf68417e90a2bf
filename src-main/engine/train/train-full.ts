/**
 * Full mode: dra.md's recipe with the backbone fine-tuned. Images go through the backbone
 * and the heads on every step and the gradient flows through both, so it needs a native
 * TF.js backend (the wasm backend has no conv2d filter gradient; the pure-JS 'cpu' backend
 * would take hours): it refuses to run elsewhere unless told otherwise (tests).
 *
 * Per step: batchNormals normals (each a fresh cut-paste pseudo anomaly with probability
 * 0.5) and batchAnomalies seen anomalies, a fresh reference set of N_r normals (pseudo with
 * probability 0.5) whose mean feature map is M_r, a random 90-degree rotation/flip of every
 * image (dra.md's rotation up to 180 degrees, on a square input), both pyramid levels.
 * The backbone's own BatchNorm layers run in inference mode: batch statistics of 48 images
 * of one product would drift from ImageNet's.
 */
import * as tf from '@tensorflow/tfjs';
import type { RgbImage } from '../../data/types';
import type { ImageFeatures, TrainSettings } from '../types';
import { EngineError } from '../types';
import { Rng } from '../util/rng';
import { activeHeads, ALL_DRA_HEADS } from '../heads/active';
import { disposeHeadTensors, forwardLevel, headTensors, readWeights, trainableList } from '../heads/forward';
import { initWeights } from '../heads/init';
import { headOptions } from '../heads/options';
import type { DraState } from '../heads/state';
import { finishState } from '../infer/calibrate';
import { throwIfAborted, yieldToEventLoop } from './abort';
import { ClippedAdam, stepDecayLr } from './adam';
import type { DraHead, SampleLabel } from './losses';
import { cutPaste } from './pseudo-anomaly';
import { drawIndices } from './sampler';
import type { TrainOptions } from './train-fast';
import { optimiseStep, reportStep, type StepContext } from './step';

export interface FullTrainData {
  normals: RgbImage[];
  anomalies: RgbImage[];
  /** settings.pseudo 'outlier': images of another data set (at the size of the normals), drawn as the pseudo anomalies. */
  outliers?: RgbImage[];
}

export interface FullBackbone {
  /** NHWC float 0..255 in, feature map out. */
  model: tf.LayersModel;
  inputSize: number;
}

/** The layers of a model in order, nested models (a truncated backbone inside a wrapper) opened up. */
function flatLayers(model: tf.LayersModel): tf.layers.Layer[] {
  return model.layers.flatMap((l) => (l instanceof tf.LayersModel ? flatLayers(l) : [l]));
}

/** The backbone variables that train: every trainable one, or those from settings.fineTuneFrom on. */
export function trainableBackboneWeights(model: tf.LayersModel, from?: string): tf.Variable[] {
  let layers = flatLayers(model);
  if (from !== undefined) {
    const at = layers.findIndex((l) => l.name === from);
    if (at < 0) {
      const named = layers.filter((l) => l.trainableWeights.length > 0).map((l) => l.name);
      throw new EngineError(
        `fineTuneFrom: the backbone has no layer '${from}' (trainable layers: ${named.slice(-4).join(', ')}, ...).`,
      );
    }
    layers = layers.slice(at);
  }
  return layers.flatMap((l) => l.trainableWeights.map((w) => w.read() as tf.Variable));
}

export interface FullTrainOptions extends TrainOptions {
  /** Run on a non-native backend anyway (the pure-JS cpu backend when asked for, tests). */
  allowSlowBackend?: boolean;
  /**
   * The fine-tuned backbone's features of the training normals and anomalies, for the reference
   * map, the extra heads and the calibration. The app passes the path its scorer takes (decoded
   * per level from the file, fused inference), so a model scores its own training images the
   * way it was calibrated; absent, the layers model computes them from `data`.
   */
  finalFeatures?: () => Promise<{ normals: ImageFeatures[]; anomalies: ImageFeatures[] }>;
}

/** Side of pyramid level l for a square input. */
export function levelSize(inputSize: number, level: number): number {
  return Math.max(1, Math.round(inputSize / 2 ** level));
}

/** [1, size, size, 3] float 0..255, optionally rotated by quarter turns and flipped. */
function imageTensor(img: RgbImage, size: number, transform = 0): tf.Tensor4D {
  return tf.tidy(() => {
    let t: tf.Tensor4D = tf.image.resizeBilinear(
      tf.tensor4d(Float32Array.from(img.data), [1, img.height, img.width, 3]),
      [size, size],
    );
    for (let q = 0; q < transform % 4; q++) t = tf.reverse(tf.transpose(t, [0, 2, 1, 3]), 2); // clockwise quarter turn
    if (transform >= 4) t = tf.reverse(t, 2);
    return t;
  });
}

function batchTensor(imgs: readonly RgbImage[], size: number, transforms?: readonly number[]): tf.Tensor4D {
  return tf.tidy(
    () =>
      tf.concat(
        imgs.map((im, i) => imageTensor(im, size, transforms?.[i] ?? 0)),
        0,
      ) as tf.Tensor4D,
  );
}

/** Feature maps of images through a backbone, per pyramid level, as plain data. */
export function extractFeatures(
  backbone: FullBackbone,
  imgs: readonly RgbImage[],
  levels: number,
  batchSize = 8,
): ImageFeatures[] {
  const out: ImageFeatures[] = imgs.map(() => ({ levels: [] }));
  for (let l = 0; l < levels; l++) {
    const size = levelSize(backbone.inputSize, l);
    for (let s = 0; s < imgs.length; s += batchSize) {
      const part = imgs.slice(s, s + batchSize);
      const [b, h, w, c, data] = tf.tidy(() => {
        const f = backbone.model.predict(batchTensor(part, size)) as tf.Tensor4D;
        return [...f.shape, f.dataSync() as Float32Array] as const;
      });
      const size1 = h * w * c;
      for (let i = 0; i < b; i++)
        out[s + i].levels.push({ h, w, c, data: data.slice(i * size1, (i + 1) * size1) });
    }
  }
  return out;
}

/** Puts a full-mode state's fine-tuned weights into a backbone model of the same architecture. */
export function applyBackboneWeights(model: tf.LayersModel, state: DraState): void {
  if (!state.backbone) return;
  const current = model.weights;
  if (current.length !== state.backbone.length) {
    throw new EngineError(
      `The model holds ${state.backbone.length} backbone weights, the backbone has ${current.length}.`,
    );
  }
  state.backbone.forEach((w, i) => {
    const want = current[i].shape.join('x');
    if (w.shape.join('x') !== want)
      throw new EngineError(
        `Backbone weight ${i} (${w.name}) is ${w.shape.join('x')}, the backbone's is ${want}.`,
      );
  });
  const tensors = state.backbone.map((w) => tf.tensor(w.data, w.shape));
  try {
    model.setWeights(tensors);
  } finally {
    tf.dispose(tensors);
  }
}

export async function trainFull(
  data: FullTrainData,
  backbone: FullBackbone,
  settings: TrainSettings,
  opts: FullTrainOptions = {},
): Promise<DraState> {
  const backend = tf.getBackend();
  if (backend !== 'tensorflow' && !opts.allowSlowBackend) {
    throw new EngineError(
      `Full mode fine-tunes the backbone and needs the native TensorFlow backend (@tensorflow/tfjs-node or tfjs-node-gpu); ` +
        `the current backend is '${backend}'. Use fast mode, which trains the heads on cached features.`,
    );
  }
  if (data.normals.length === 0) throw new EngineError('Training needs at least one normal image.');
  const nLevels = Math.max(1, settings.pyramidLevels);
  const ho = headOptions(settings);
  const steps = Math.max(1, Math.floor(settings.steps));
  const hasSeen = data.anomalies.length > 0;
  const active = activeHeads(settings, hasSeen);
  const skip: DraHead[] = ALL_DRA_HEADS.filter((h) => !active.includes(h));

  const root = new Rng(settings.seed);
  const initRng = root.fork();
  const sampleRng = root.fork();
  const lossRng = root.fork();
  const pseudoRng = root.fork();

  const outShape = backbone.model.outputs[0].shape;
  const channels = outShape[outShape.length - 1];
  if (typeof channels !== 'number') throw new EngineError('The backbone output has no fixed channel count.');
  const base = initWeights(
    { channels, reduceTo: ho.reduceTo, width: ho.width, hidden: ho.hidden, patchHidden: ho.patchHidden },
    initRng,
  );
  const vars = headTensors(base, true);
  const backboneVars = trainableBackboneWeights(backbone.model, settings.fineTuneFrom);
  const params = [...trainableList(vars), ...backboneVars];
  const adam = new ClippedAdam(params);

  const outliers = settings.pseudo === 'outlier' ? (data.outliers ?? []) : null;
  if (outliers && outliers.length === 0)
    throw new EngineError("Pseudo anomalies 'outlier' need images of another data set (none given).");
  const pseudoOf = (i: number): RgbImage =>
    outliers ? outliers[pseudoRng.int(outliers.length)] : cutPaste(data.normals[i], pseudoRng).image;
  const drawNormal = (i: number): { img: RgbImage; label: SampleLabel } =>
    sampleRng.next() < 0.5 ? { img: pseudoOf(i), label: 2 } : { img: data.normals[i], label: 0 };

  const stepCtx: StepContext = { params, adam, base, settings, lossRng, skip };
  const started = Date.now();
  try {
    for (let step = 0; step < steps; step++) {
      throwIfAborted(opts.signal);
      const items: { img: RgbImage; label: SampleLabel }[] = [];
      for (const i of drawIndices(sampleRng, data.normals.length, settings.batchNormals))
        items.push(drawNormal(i));
      if (hasSeen) {
        for (let j = 0; j < settings.batchAnomalies; j++)
          items.push({ img: data.anomalies[sampleRng.int(data.anomalies.length)], label: 1 });
      }
      const refs = drawIndices(sampleRng, data.normals.length, Math.max(1, settings.referenceCount)).map(
        (i) => drawNormal(i).img,
      );
      const transforms = items.map(() => (ho.augment ? sampleRng.int(8) : 0));
      const refTransforms = refs.map(() => (ho.augment ? sampleRng.int(8) : 0));
      const labels = items.map((s) => s.label);
      const lr = stepDecayLr(settings.learningRate, step, steps);

      const losses = optimiseStep(stepCtx, labels, lr, () =>
        Array.from({ length: nLevels }, (_, l) => {
          const size = levelSize(backbone.inputSize, l);
          const x = batchTensor(
            items.map((s) => s.img),
            size,
            transforms,
          );
          const r = batchTensor(refs, size, refTransforms);
          const fx = backbone.model.apply(x, { training: false }) as tf.Tensor4D;
          const fr = tf.mean(backbone.model.apply(r, { training: false }) as tf.Tensor4D, 0) as tf.Tensor3D;
          return forwardLevel(vars, fx, fr, { training: true }, false);
        }),
      );
      reportStep(opts, step, steps, started, losses);
      await yieldToEventLoop();
    }
    throwIfAborted(opts.signal);

    opts.onProgress?.({ stage: 'reference', step: 0, total: 1 });
    const final = opts.finalFeatures
      ? await opts.finalFeatures()
      : {
          normals: extractFeatures(backbone, data.normals, nLevels),
          anomalies: settings.globalHead ? extractFeatures(backbone, data.anomalies, nLevels) : [],
        };
    const normalFeats = final.normals;
    const anomalyFeats = settings.globalHead ? final.anomalies : [];
    const shapes = normalFeats[0].levels.map(({ h, w, c }) => ({ h, w, c }));
    const reference = shapes.map((s, l) => {
      const d = new Float32Array(s.h * s.w * s.c);
      for (const f of normalFeats) {
        const src = f.levels[l].data;
        for (let j = 0; j < d.length; j++) d[j] += src[j];
      }
      for (let j = 0; j < d.length; j++) d[j] /= normalFeats.length;
      return { ...s, data: d };
    });
    const state: DraState = {
      formatVersion: 1,
      settings: { ...settings, mode: 'full' },
      levels: shapes,
      weights: readWeights(vars, base),
      reference,
      hasSeen,
      calibration: {},
      backbone: backbone.model.weights.map((w) => {
        const v = w.read();
        return {
          name: w.originalName,
          shape: [...v.shape],
          data: Float32Array.from(v.dataSync() as Float32Array),
        };
      }),
    };
    opts.onProgress?.({ stage: 'calibrate', step: 0, total: 1 });
    return await finishState(state, normalFeats, anomalyFeats);
  } finally {
    adam.dispose();
    disposeHeadTensors(vars);
  }
}
