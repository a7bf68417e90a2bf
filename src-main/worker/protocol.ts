/**
 * Messages between the app (main thread) and the engine worker, and the slice of the
 * engine facade the worker uses. Structured-clone data only: Float32Arrays travel as is.
 */
import type { ImageScore, ProgressFn, TrainProgress, TrainSettings } from '../engine/types';
import type { SystemInfo } from '../api/contract';
import type { InputShape } from '../engine/features/geometry';

/** A feature session the worker keeps open between jobs (engine/feature-session.ts). */
export interface EngineSession {
  warm(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The engine facade as the worker calls it (src-main/engine/index.ts). Sessions are
 * optional: an engine without them (the tests' fake) runs each job cold.
 */
export interface EngineApi {
  trainModel(
    req: TrainJob & {
      onProgress?: ProgressFn;
      signal?: AbortSignal;
      session?: EngineSession;
      /** The input shape already chosen (inputShapeFor); null: square. */
      inputShape?: InputShape | null;
    },
  ): Promise<{
    modelDir: string;
    manifest: unknown;
    warnings: string[];
    validationPending?: { folds: number };
  }>;
  /** engine/validate-model.ts: the deferred cross-validation of a saved model. */
  validateModel?(
    req: ValidateJob & { onProgress?: ProgressFn; signal?: AbortSignal; session?: EngineSession },
  ): Promise<{ manifest: unknown }>;
  /** Loads what training needs besides features (train/matmul-runtime.ts). */
  warmTraining?(): Promise<void>;
  openSession?(opts: {
    cacheDir?: string;
    inputSize?: number;
    inputShape?: InputShape;
    backbone?: string;
    tapLayers?: string[];
  }): Promise<EngineSession>;
  /** The backbone taps a session needs for this PatchCore head setting (absent: the default) and backbone. */
  sessionTapLayers?(patchcoreHead: boolean | undefined, backbone: string): string[];
  /** engine/features/geometry.ts shapeForImages: the input shape for these images (undefined: square). */
  inputShapeFor?(inputSize: number, paths: readonly string[]): Promise<InputShape | undefined>;
  /** The engine id of a backbone name or id (engine/backbone/index.ts): one open session per backbone. */
  backboneIdOf?(name: string): string;
  openScorer(
    modelDir: string,
    opts?: { cacheDir?: string; workers?: number; session?: EngineSession },
  ): Promise<{
    manifest: unknown;
    score(
      paths: string[],
      onProgress?: (done: number, total: number) => void,
    ): Promise<
      Array<{ path: string; ok: true; score: ImageScore } | { path: string; ok: false; error: string }>
    >;
    close(): Promise<void>;
  }>;
  /** engine/capabilities.ts systemInfo: the backend this worker runs on. */
  systemInfo(): Promise<SystemInfo>;
}

export interface TrainJob {
  normals: { id: string; path: string }[];
  anomalies: { id: string; path: string; cls: string }[];
  outDir: string;
  /** Side of the square model input (the app offers 224 and 448; tests use less). */
  inputSize?: number;
  /** 'mobilenet' (default) or 'resnet50'; the model's manifest records it, scoring follows it. */
  backbone?: string;
  settings?: Partial<TrainSettings>;
  cacheDir?: string;
  /** K-fold cross-validation for held-out metrics (0 or absent: off). */
  validateFolds?: number;
  /**
   * 'later': save and score first with a provisional weight of the supervised heads; the
   * cross-validation runs afterwards as a ValidateJob. Absent: inline, before saving.
   */
  validation?: 'inline' | 'later';
  /** With 'later': the model folder whose chosen weight is the provisional one. */
  provisionalFrom?: string;
}

/** The deferred cross-validation of a saved model, on the images it trained on. */
export interface ValidateJob {
  modelDir: string;
  normals: { id: string; path: string }[];
  anomalies: { id: string; path: string; cls: string }[];
  folds: number;
  cacheDir?: string;
  /** Images outside the training set the fold models score too (validate-model.ts). */
  reference?: { id: string; path: string }[];
}

export interface ValidatedModel {
  /** The model's metrics with the held-out ones, as ModelInfo.metrics (models/held-out.ts). */
  metrics: Record<string, unknown> | null;
}

/** What a warm engine keeps ready: a feature session for this cache, input size and shape, and backbone. */
export interface WarmRequest {
  cacheDir?: string;
  inputSize?: number;
  /** Level-0 height and width for elongated images (absent: square). */
  inputShape?: InputShape;
  /** A backbone name or engine id (default 'mobilenet'). */
  backbone?: string;
  /** The project's PatchCore head setting (absent: the engine's default): its backbone tap is computed too. */
  patchcoreHead?: boolean;
}

export interface ScoreJob {
  modelDir: string;
  cacheDir?: string;
  /** Feature worker threads (default 2; 0 computes in the engine worker's own thread). */
  workers?: number;
  items: { id: number; path: string }[];
}

export type ScoredItem =
  | {
      id: number;
      ok: true;
      total: number;
      perHead: Record<string, number>;
      heatmap: ImageScore['heatmap'] | null;
    }
  | { id: number; ok: false; error: string };

export interface TrainedModel {
  modelDir: string;
  /** The manifest's metrics and validation as ModelInfo.metrics (models/held-out.ts), plain JSON. */
  metrics: Record<string, unknown> | null;
  /** The settings the engine actually used (defaults filled in) and its backbone, from the manifest. */
  settings: Record<string, unknown> | null;
  warnings: string[];
  /** Saved with its cross-validation still to run (TrainJob validation 'later'). */
  validationPending?: { folds: number };
}

export type ToWorker =
  | { type: 'train'; jobId: number; job: TrainJob }
  | { type: 'score'; jobId: number; job: ScoreJob }
  | { type: 'validate'; jobId: number; job: ValidateJob }
  | { type: 'cancel'; jobId: number }
  | { type: 'warm'; request: WarmRequest }
  /** Answered at once, also while a job runs (the backend is chosen once per thread). */
  | { type: 'info'; requestId: number };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'progress'; jobId: number; progress: TrainProgress }
  | { type: 'trained'; jobId: number; result: TrainedModel }
  | { type: 'scored'; jobId: number; items: ScoredItem[]; done: number; total: number }
  | { type: 'validated'; jobId: number; result: ValidatedModel }
  | { type: 'finished'; jobId: number }
  | { type: 'cancelled'; jobId: number }
  | { type: 'failed'; jobId: number; name: string; message: string }
  | { type: 'info'; requestId: number; info: SystemInfo }
  | { type: 'info-failed'; requestId: number; message: string };

export interface WorkerInit {
  /** Module to load instead of the real engine (tests use a fake, fast engine). */
  engineModule?: string;
  /** Set by the tsx bootstrap: the TypeScript entry to load. */
  tsEntry?: string;
}
