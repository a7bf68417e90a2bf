/**
 * The cross-validation of a model saved with it deferred (trainModel validation 'later', the
 * app's retrain): the same images, settings and seed as the inline path, so the same folds,
 * fold models and choice of the supervised heads' weight (choose.ts); then the model folder is
 * rewritten, atomically, with the chosen combination in place of the provisional one and the
 * held-out metrics and out-of-fold scores in its manifest. Features come from the session's
 * caches (in memory when the session is the one that trained the model).
 */
import { performance } from 'node:perf_hooks';
import { backboneSpecFor } from './backbone';
import { FeatureSession } from './feature-session';
import { loadModel, saveModel, type ModelManifest } from './model-file';
import { throwIfAborted } from './train/abort';
import { trainingImages, type LabelledImages } from './training-images';
import { EngineError } from './types';
import { crossValidate, manifestValidation, validationMetrics, type ValidationResult } from './validate';

export interface ValidateModelRequest extends LabelledImages {
  modelDir: string;
  /** K of the K-fold cross-validation (as TrainRequest.validateFolds). */
  folds: number;
  cacheDir?: string;
  workers?: number;
  /** A warm session; used when it reads the model's backbone, else the call opens its own. */
  session?: FeatureSession;
  /**
   * Images outside the training set (the queue has scored them, so their features are
   * cached): every fold model scores them too, which puts its scores on the model's scale
   * (api/threshold.ts foldMappings). Unreadable ones are skipped.
   */
  reference?: { id: string; path: string }[];
}

export interface ValidateModelResult {
  manifest: ModelManifest;
  validation: ValidationResult;
  seconds: number;
}

export async function validateModel(req: ValidateModelRequest): Promise<ValidateModelResult> {
  const t0 = performance.now();
  if (!(req.folds >= 2)) throw new EngineError(`Validation needs at least 2 folds (asked for ${req.folds}).`);
  const model = await loadModel(req.modelDir);
  if (model.state.backbone)
    throw new EngineError(
      'A full-mode model cannot be cross-validated after training (its backbone was fine-tuned).',
    );
  const { backbone } = model.manifest;
  const own = !req.session?.serves(backbone);
  const session = own
    ? await FeatureSession.open({
        spec: backboneSpecFor(backbone.id, {
          inputSize: backbone.inputSize,
          inputShape: backbone.inputShape,
          featureLayer: backbone.featureLayer,
          tapLayers: backbone.tapLayers,
        }),
        levels: backbone.levels,
        cacheDir: req.cacheDir,
        workers: req.workers,
      })
    : req.session!;
  try {
    const settings = model.state.settings;
    const data = await trainingImages(session, req, settings);
    if (data.ids.join('\n') !== model.manifest.trainingImageIds.join('\n'))
      throw new EngineError(
        'Validation: these are not the images the model trained on (a label or an image changed); nothing was changed.',
      );
    const refs = req.reference ?? [];
    const refFeatures = refs.length ? await session.ofPaths(refs.map((r) => r.path)) : [];
    throwIfAborted(req.signal);
    const validation = await crossValidate(data.normals, data.anomalies, settings, {
      folds: req.folds,
      select: true,
      onProgress: req.onProgress,
      signal: req.signal,
      reference: refs.flatMap((r, i) => {
        const features = refFeatures[i].features;
        return features ? [{ id: r.id, features }] : [];
      }),
    });
    throwIfAborted(req.signal);
    const { combination: _provisional, ...state } = model.state;
    const manifest = await saveModel(req.modelDir, {
      manifest: {
        ...model.manifest,
        metrics: { ...model.manifest.metrics, ...validationMetrics(validation) },
        validation: manifestValidation(validation),
      },
      state: validation.combination ? { ...state, combination: validation.combination } : state,
    });
    return { manifest, validation, seconds: (performance.now() - t0) / 1000 };
  } finally {
    if (own) await session.close();
  }
}
