/**
 * The engine's front: train a model from image files, and score image files with a saved
 * model. The CLI, the app's worker and the tests all come through here.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { FeatureSession, type FeatureSessionOptions } from './feature-session';
import { DEFAULT_SETTINGS, resolveSettings } from './settings';
import { headTapLayers } from './infer/patchcore-head';
import { initBackend } from './backend';
import { fullModeSupport } from './capabilities';
import { backboneIdOf, backboneSpecFor } from './backbone';
import { trainFullModel } from './full-mode';
import { scoreFeaturesAsync } from './infer';
import { BACKBONE_FILE, loadModel, type ModelManifest } from './model-file';
import { saveTrained } from './save-trained';
import { manifestValidation, validationMetrics, type ValidationResult } from './validate';
import { trainChosen } from './choose';
import { fastStepApplies } from './train/fast-step';
import { warmTraining } from './train/matmul-runtime';
import { chosenWeightOf, withProvisionalCombination } from './provisional';
import { openTrainingSession, trainingImages } from './training-images';
import { sameShape, shapeForImages, type InputShape } from './features/geometry';
import { EngineError, type ImageScore, type ProgressFn, type TrainSettings } from './types';

export interface TrainRequest {
  normals: { id: string; path: string }[];
  anomalies: { id: string; path: string; cls: string }[];
  /** Model folder to write; replaced atomically once the new model is complete. */
  outDir: string;
  /** Side of the square model input (the app offers 224 and 448; tests use less). */
  inputSize?: number;
  /**
   * Fast mode's level-0 height and width; null: square. Absent: chosen from the training
   * images' median aspect ratio (features/geometry.ts), square unless they are elongated.
   * Full mode always trains square.
   */
  inputShape?: InputShape | null;
  /** 'mobilenet' (default, fast) or 'resnet50' (accurate); the manifest records it. */
  backbone?: string;
  /** Backbone layer feeding the heads (default: the backbone's default). */
  featureLayer?: string;
  /** Further backbone layers whose level-0 maps the heads get (ImageFeatures.taps). */
  tapLayers?: string[];
  settings?: Partial<TrainSettings>;
  cacheDir?: string;
  workers?: number;
  onProgress?: ProgressFn;
  signal?: AbortSignal;
  /** Reuse an open session (the benchmark trains many models on one). */
  session?: FeatureSession;
  /**
   * K of a K-fold cross-validation run after training, before saving: its held-out metrics
   * go into the manifest (validate.ts), and it chooses the supervised heads' weight
   * (choose.ts). 0 or absent: off, the fixed weights of settings.ts.
   */
  validateFolds?: number;
  /**
   * 'inline' (default): the cross-validation runs before the model is saved. 'later' (the
   * app): the model is saved at once with a provisional weight of its supervised heads
   * (provisional.ts) and validateModel() runs the same cross-validation afterwards.
   */
  validation?: 'inline' | 'later';
  /** With validation 'later': a previous model whose chosen weight is the provisional one. */
  provisionalFrom?: string;
}

export interface TrainResult {
  modelDir: string;
  manifest: ModelManifest;
  warnings: string[];
  backend: string;
  /** What ran the frozen backbone (onnxruntime or tfjs), as FeatureSession.runtime says. */
  runtime: string;
  seconds: { features: number; train: number; validate?: number; save: number; total: number };
  /** Present when validateFolds was asked for (and ran inline). */
  validation?: ValidationResult;
  /** With validation 'later': the folds validateModel() is to run. */
  validationPending?: { folds: number };
}

export async function trainModel(req: TrainRequest): Promise<TrainResult> {
  const settings = resolveSettings(req.settings);
  if (settings.mode === 'full') {
    // Refused before anything is read or computed: the backend decides (capabilities.ts).
    const backend = await initBackend();
    const support = fullModeSupport(backend);
    if (!support.ok) throw new EngineError(support.message);
    if (req.normals.length < 2) throw new EngineError('Training needs at least 2 good images.');
    return trainFullModel(req, settings, backend);
  }
  if (req.normals.length < 2) throw new EngineError('Training needs at least 2 good images.');
  const t0 = performance.now();
  // The head step's products load while the features are read (its I/O waits leave the thread idle).
  if (fastStepApplies(settings)) warmTraining().catch(() => undefined);
  // The PatchCore head reads a backbone tap: a given session without it cannot serve it.
  const tapLayers =
    req.tapLayers ??
    headTapLayers(settings, req.session?.spec.id ?? backboneIdOf(req.backbone ?? 'mobilenet'));
  const inputShape =
    req.inputShape === undefined
      ? await shapeForImages(
          req.session?.spec.inputSize ?? req.inputSize ?? 224,
          [...req.normals, ...req.anomalies].map((x) => x.path),
        )
      : (req.inputShape ?? undefined);
  const given =
    req.session &&
    tapLayers.every((t) => req.session!.spec.tapLayers?.includes(t)) &&
    sameShape(req.session.spec.inputShape, inputShape)
      ? req.session
      : undefined;
  const session =
    given ??
    (await openTrainingSession({
      ...req,
      ...(req.session
        ? {
            backbone: req.session.spec.id,
            inputSize: req.session.spec.inputSize,
            featureLayer: req.session.spec.featureLayer,
          }
        : {}),
      inputShape,
      tapLayers,
    }));
  try {
    const data = await trainingImages(session, req, settings);
    const { warnings } = data;
    const tFeatures = performance.now();

    const later = req.validation === 'later' && (req.validateFolds ?? 0) > 0;
    const chosen = await trainChosen(data.normals, data.anomalies, settings, {
      folds: later ? 0 : (req.validateFolds ?? 0),
      onProgress: req.onProgress,
      signal: req.signal,
    });
    if (later)
      chosen.state = withProvisionalCombination(
        chosen.state,
        req.provisionalFrom ? await chosenWeightOf(req.provisionalFrom) : undefined,
      );
    const { state, validation } = chosen;
    const tValidate = performance.now();
    const tTrain = tFeatures + chosen.trainSeconds * 1000;

    const manifest = await saveTrained(
      req.outDir,
      session.backend,
      {
        state,
        backbone: { ...session.spec, levels: session.levels },
        trainingImageIds: data.ids,
        ...(validation
          ? { metrics: validationMetrics(validation), validation: manifestValidation(validation) }
          : {}),
      },
      req.onProgress,
    );
    const tEnd = performance.now();
    return {
      modelDir: req.outDir,
      manifest,
      warnings,
      backend: session.backend.description,
      runtime: session.runtime,
      seconds: {
        features: (tFeatures - t0) / 1000,
        train: (tTrain - tFeatures) / 1000,
        ...(validation ? { validate: (tValidate - tTrain) / 1000 } : {}),
        save: (tEnd - tValidate) / 1000,
        total: (tEnd - t0) / 1000,
      },
      ...(validation ? { validation } : {}),
      ...(later ? { validationPending: { folds: req.validateFolds! } } : {}),
    };
  } finally {
    if (!given) await session.close();
  }
}

export type ScoreResult =
  { path: string; ok: true; score: ImageScore } | { path: string; ok: false; error: string };

export interface Scorer {
  manifest: ModelManifest;
  backend: string;
  score(paths: string[], onProgress?: (done: number, total: number) => void): Promise<ScoreResult[]>;
  close(): Promise<void>;
}

export async function openScorer(
  modelDir: string,
  opts: Omit<
    FeatureSessionOptions,
    'backbone' | 'inputSize' | 'inputShape' | 'featureLayer' | 'tapLayers' | 'levels' | 'spec'
  > & {
    /** Refuse a model trained on another backbone (a name or id, backbone/index.ts backboneIdOf). */
    expectBackbone?: string;
    /**
     * An open session to score with when it reads the model's backbone (a warm engine's):
     * the scorer then leaves it open. Otherwise the scorer opens its own.
     */
    session?: FeatureSession;
  } = {},
): Promise<Scorer> {
  const { expectBackbone, ...sessionOpts } = opts;
  const model = await loadModel(
    modelDir,
    expectBackbone === undefined ? {} : { backboneId: backboneIdOf(expectBackbone) },
  );
  const { backbone } = model.manifest;
  const spec = backboneSpecFor(backbone.id, {
    inputSize: backbone.inputSize,
    inputShape: backbone.inputShape,
    featureLayer: backbone.featureLayer,
    tapLayers: backbone.tapLayers,
  });
  // A full-mode model scores (and heatmaps) with its own fine-tuned backbone, whose features
  // are cached under the SHA-256 of its weights.
  const tuned = model.state.backbone ? model.manifest.files[BACKBONE_FILE] : undefined;
  // A warm session (pretrained weights) cannot serve a fine-tuned model.
  const { session: given, ...rest } = sessionOpts;
  const own = tuned !== undefined || !given?.serves(backbone);
  const session = own
    ? await FeatureSession.open({
        ...rest,
        spec: tuned
          ? { ...spec, fineTuned: { modelDir: path.resolve(modelDir), sha256: tuned.sha256 } }
          : spec,
        levels: backbone.levels,
      })
    : given!;
  return {
    manifest: model.manifest,
    backend: session.backend.description,
    async score(paths, onProgress) {
      const feats = await session.ofPaths(paths, onProgress);
      const readable = feats.flatMap((f) => (f.features ? [f.features] : []));
      const scores = await scoreFeaturesAsync(model.state, readable);
      let k = 0;
      return feats.map((f): ScoreResult =>
        f.features
          ? { path: f.path, ok: true, score: scores[k++] }
          : { path: f.path, ok: false, error: f.error ?? `${f.path}: unreadable` },
      );
    },
    close: async () => {
      if (own) await session.close();
    },
  };
}

/** The backbone taps the heads read with this PatchCore head setting (absent: the default) and backbone. */
export function sessionTapLayers(patchcoreHead: boolean | undefined, backbone: string): string[] {
  const settings = patchcoreHead === undefined ? DEFAULT_SETTINGS : { patchcoreHead };
  return headTapLayers(settings, backboneIdOf(backbone));
}

/** A feature session to keep open between jobs (the app's warm engine), with the taps the default heads read. */
export function openSession(opts: FeatureSessionOptions = {}): Promise<FeatureSession> {
  const { tapLayers: asked, ...rest } = opts;
  const tapLayers =
    asked ?? (opts.spec ? undefined : sessionTapLayers(undefined, opts.backbone ?? 'mobilenet'));
  // None is absent, not empty: the cache keys of features without taps stay those they had.
  return FeatureSession.open({ ...rest, ...(tapLayers?.length ? { tapLayers } : {}) });
}
