/**
 * The labelled images of a training as the heads read them: backbone features and the
 * pseudo-anomaly pool of every readable good image, through the session's cache. The model's
 * training and its (possibly later) cross-validation both gather them here, so the two see
 * the same images in the same order.
 */
import { FeatureSession } from './feature-session';
import type { InputShape } from './features/geometry';
import { throwIfAborted } from './train/abort';
import { EngineError, type ProgressFn, type TrainSettings } from './types';
import type { ValidationAnomaly, ValidationNormal } from './validate';

export interface LabelledImages {
  normals: { id: string; path: string }[];
  anomalies: { id: string; path: string; cls: string }[];
  onProgress?: ProgressFn;
  signal?: AbortSignal;
}

export interface TrainingImages {
  normals: ValidationNormal[];
  anomalies: ValidationAnomaly[];
  /** Of the usable images, normals first: the manifest's trainingImageIds. */
  ids: string[];
  warnings: string[];
}

export interface SessionRequest {
  backbone?: string;
  inputSize?: number;
  inputShape?: InputShape;
  featureLayer?: string;
  tapLayers?: string[];
  cacheDir?: string;
  workers?: number;
}

export function openTrainingSession(req: SessionRequest): Promise<FeatureSession> {
  return FeatureSession.open({
    backbone: req.backbone,
    inputSize: req.inputSize,
    inputShape: req.inputShape,
    featureLayer: req.featureLayer,
    tapLayers: req.tapLayers,
    cacheDir: req.cacheDir,
    workers: req.workers,
  });
}

export async function trainingImages(
  session: FeatureSession,
  req: LabelledImages,
  settings: TrainSettings,
): Promise<TrainingImages> {
  const warnings: string[] = [];
  const report = (stage: 'features' | 'pseudo') => (done: number, total: number) =>
    req.onProgress?.({ stage, step: done, total });
  const all = [...req.normals, ...req.anomalies];
  const feats = await session.ofPaths(
    all.map((x) => x.path),
    report('features'),
  );
  throwIfAborted(req.signal);
  for (const f of feats) if (f.error) warnings.push(f.error);
  const usable = (i: number) => feats[i].features !== null;
  const normalIdx = req.normals.map((_, i) => i).filter(usable);
  const anomalyIdx = req.anomalies.map((_, i) => i + req.normals.length).filter(usable);
  if (normalIdx.length < 2)
    throw new EngineError('Fewer than 2 good images could be read; nothing was trained.');
  const { pool: pseudo, warnings: pseudoWarnings } = await session.pseudoFor(
    settings,
    normalIdx.map((i) => ({ path: feats[i].path, hash: feats[i].hash! })),
    report('pseudo'),
  );
  warnings.push(...pseudoWarnings);
  throwIfAborted(req.signal);
  return {
    normals: normalIdx.map((i, j) => ({ id: all[i].id, features: feats[i].features!, pseudo: pseudo[j] })),
    anomalies: anomalyIdx.map((i) => ({
      id: all[i].id,
      cls: req.anomalies[i - req.normals.length].cls,
      features: feats[i].features!,
    })),
    ids: [...normalIdx, ...anomalyIdx].map((i) => all[i].id),
    warnings,
  };
}
