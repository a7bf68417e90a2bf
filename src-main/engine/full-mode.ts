/**
 * Full mode through the engine's front (trainModel): the paper's recipe with the backbone
 * fine-tuned (train/train-full.ts), from image files to a saved model whose file holds the
 * fine-tuned backbone. Every image goes through the backbone on every step, so nothing is
 * taken from the feature cache; the scorer of the saved model caches its features under the
 * model's own key (features/cache.ts fineTuned).
 */
import { performance } from 'node:perf_hooks';
import { listImagesDeep } from '../data/adapters/common';
import { loadImageResized } from '../data/decode';
import type { RgbImage } from '../data/types';
import type { BackendInfo } from './backend';
import { backboneSpecFor, loadBackbone } from './backbone';
import { OUTLIER_MAX } from './feature-session';
import { FeatureComputer } from './features/compute';
import { saveTrained } from './save-trained';
import { throwIfAborted } from './train/abort';
import { trainFull } from './train/train-full';
import { EngineError, type ImageFeatures, type TrainSettings } from './types';
import { Rng } from './util/rng';
import type { TrainRequest, TrainResult } from './engine';

interface Decoded {
  id: string;
  path: string;
  image: RgbImage;
}

/** Decodes at the model input size; an unreadable image becomes a warning, not a failure. */
async function decodeAll(
  items: { id: string; path: string }[],
  size: number,
  warnings: string[],
  onDone: () => void,
): Promise<Decoded[]> {
  const out: Decoded[] = [];
  for (const it of items) {
    try {
      out.push({ ...it, image: await loadImageResized(it.path, size) });
    } catch (err) {
      warnings.push(`${it.path}: ${(err as Error).message}`);
    }
    onDone();
  }
  return out;
}

/** Outlier exposure: up to OUTLIER_MAX images of another data set (a seeded sample), decoded. */
async function outlierImages(settings: TrainSettings, size: number, warnings: string[]): Promise<RgbImage[]> {
  if (settings.pseudo !== 'outlier') return [];
  if (!settings.outlierDir) {
    throw new EngineError(
      "Pseudo anomalies 'outlier' need a folder of images from another data set (settings.outlierDir, or --outliers DIR).",
    );
  }
  let files: string[];
  try {
    files = await listImagesDeep(settings.outlierDir);
  } catch (err) {
    throw new EngineError(
      `Outlier images: cannot read the folder ${settings.outlierDir} (${(err as Error).message}).`,
    );
  }
  const chosen =
    files.length > OUTLIER_MAX ? new Rng(settings.seed).sample(files, OUTLIER_MAX).sort() : files;
  const decoded = await decodeAll(
    chosen.map((p) => ({ id: p, path: p })),
    size,
    warnings,
    () => undefined,
  );
  return decoded.map((d) => d.image);
}

export async function trainFullModel(
  req: TrainRequest,
  settings: TrainSettings,
  backend: BackendInfo,
): Promise<TrainResult> {
  const t0 = performance.now();
  // Either backbone trains: both are TF.js layers models (backbone/backbone.ts layersModel).
  const spec = backboneSpecFor(req.backbone ?? 'mobilenet', {
    inputSize: req.inputSize ?? 224,
    featureLayer: req.featureLayer,
    tapLayers: req.tapLayers,
  });
  const levels = Math.max(1, settings.pyramidLevels);
  const warnings: string[] = [];
  if (req.validateFolds && req.validateFolds > 0) {
    warnings.push(
      'Full mode: held-out metrics were not measured (each cross-validation fold would fine-tune the backbone again).',
    );
  }
  const total = req.normals.length + req.anomalies.length;
  let done = 0;
  const tick = () => req.onProgress?.({ stage: 'features', step: ++done, total });
  const normals = await decodeAll(req.normals, spec.inputSize, warnings, tick);
  const anomalies = await decodeAll(req.anomalies, spec.inputSize, warnings, tick);
  if (normals.length < 2)
    throw new EngineError('Fewer than 2 good images could be read; nothing was trained.');
  const outliers = await outlierImages(settings, spec.inputSize, warnings);
  throwIfAborted(req.signal);
  const tFeatures = performance.now();

  const backbone = await loadBackbone(spec);
  // Disposing the computer disposes the backbone it wraps.
  const computer = FeatureComputer.around(backbone, backend, levels);
  let state;
  try {
    const featuresOf = async (items: Decoded[]): Promise<ImageFeatures[]> => {
      const results = await computer.compute(items.map((d) => ({ kind: 'path' as const, path: d.path })));
      return results.map((r, i) => {
        if (!r.ok) throw new EngineError(`${items[i].path}: ${r.error}`);
        return r.pooled ? { levels: r.levels, pooled: r.pooled } : { levels: r.levels };
      });
    };
    state = await trainFull(
      {
        normals: normals.map((d) => d.image),
        anomalies: anomalies.map((d) => d.image),
        ...(outliers.length > 0 ? { outliers } : {}),
      },
      { model: backbone.layersModel(), inputSize: spec.inputSize },
      { ...settings, pyramidLevels: levels },
      {
        allowSlowBackend: backend.name === 'cpu',
        onProgress: req.onProgress,
        signal: req.signal,
        finalFeatures: async () => {
          // The fused inference ops were folded from the pretrained weights at load.
          backbone.sync();
          return { normals: await featuresOf(normals), anomalies: await featuresOf(anomalies) };
        },
      },
    );
  } finally {
    computer.dispose();
  }
  throwIfAborted(req.signal);
  const tTrain = performance.now();

  const manifest = await saveTrained(
    req.outDir,
    backend,
    {
      state,
      backbone: { ...spec, levels },
      trainingImageIds: [...normals.map((d) => d.id), ...anomalies.map((d) => d.id)],
    },
    req.onProgress,
  );
  const tEnd = performance.now();
  return {
    modelDir: req.outDir,
    manifest,
    warnings,
    backend: backend.description,
    runtime: 'tfjs (full mode: the backbone trains)',
    seconds: {
      features: (tFeatures - t0) / 1000,
      train: (tTrain - tFeatures) / 1000,
      save: (tEnd - tTrain) / 1000,
      total: (tEnd - t0) / 1000,
    },
  };
}
