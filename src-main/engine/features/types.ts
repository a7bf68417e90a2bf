/** Public types of feature extraction and the messages between the main thread and workers. */
import type { RgbImage } from '../../data/types';
import type { BackendInfo, BackendPreference } from '../backend';
import type { BackboneSpec, FeatureMap, ImageFeatures } from '../types';
import type { RuntimeChoice, RuntimePreference } from './runtime';

/**
 * A file, or an in-memory image (e.g. a pseudo-anomaly variant) under a unique stable key
 * given by the caller. The image may be a function so that it is only made on a cache miss.
 */
export type FeatureInput = { path: string } | { key: string; image: RgbImage | (() => Promise<RgbImage>) };

export type FeatureResult =
  { ok: true; features: ImageFeatures; hash: string } | { ok: false; error: string };

export interface FeatureExtractorOptions {
  spec: BackboneSpec;
  /** Pyramid levels: level l is the image resized to inputSize / 2^l. Default 2. */
  levels?: number;
  /** Default: $SWAN_CACHE_DIR, else the per-user cache folder. */
  cacheDir?: string;
  /** Worker threads, default 2; 0 computes in this thread. */
  workers?: number;
  backend?: BackendPreference;
  /** Runtime of the frozen backbone (features/runtime.ts); default 'auto', env SWAN_RUNTIME. */
  runtime?: RuntimePreference;
  /** Images per forward pass. Default 8. */
  batchSize?: number;
}

export interface FeatureExtractor {
  /** The backend the features are computed on (the workers' backend in worker mode). */
  backend: BackendInfo;
  /** What runs the backbone: 'tfjs (<why>)' or onnxruntime with its threads. */
  runtime: string;
  /** One result per input, in input order. A bad image never fails the batch. */
  extract(
    inputs: FeatureInput[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<FeatureResult[]>;
  /** Starts the backbone workers now (they otherwise start on the first cache miss). */
  warm(): Promise<void>;
  close(): Promise<void>;
}

/** A unit of work sent to a computer: a file, or already-decoded pixels. */
export type WorkItem = { kind: 'path'; path: string } | { kind: 'image'; label: string; image: RgbImage };

export type WorkResult =
  | { ok: true; levels: FeatureMap[]; pooled?: Float32Array; taps?: Record<string, FeatureMap> }
  | { ok: false; error: string };

export type ToWorker =
  | { type: 'init'; spec: BackboneSpec; levels: number; backend: BackendPreference; runtime: RuntimeChoice }
  | { type: 'batch'; id: number; items: WorkItem[] };

export type FromWorker =
  | { type: 'ready'; backend: BackendInfo }
  | { type: 'init-error'; error: string }
  | { type: 'result'; id: number; results: WorkResult[] };
