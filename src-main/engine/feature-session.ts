/**
 * Feature extraction for training and scoring, shared by the facade, the benchmark and the
 * app's worker: backbone features of image files, and the pool of cut-paste pseudo-anomaly
 * variants of the training normals, all through the on-disk feature cache.
 */
import { createFeatureExtractor, type FeatureExtractor } from './features';
import type { RuntimePreference } from './features/runtime';
import { initBackend } from './backend';
import { backboneSpecFor } from './backbone';
import { loadImageResized } from '../data/decode';
import { cutPaste } from './train/pseudo-anomaly';
import { Rng } from './util/rng';
import { EngineError, type BackboneSpec, type ImageFeatures, type TrainSettings } from './types';
import { listImagesDeep } from '../data/adapters/common';
import { inputDims, sameShape, type InputShape } from './features/geometry';

export interface FeatureSessionOptions {
  /** 'mobilenet' (default) or 'resnet50', or an engine id (backbone/index.ts BACKBONE_NAMES). */
  backbone?: string;
  /** Further layers whose level-0 maps come with the features (ImageFeatures.taps). */
  tapLayers?: string[];
  inputSize?: number;
  /** Level-0 height and width for elongated images (features/geometry.ts); absent: square. */
  inputShape?: InputShape;
  featureLayer?: string;
  levels?: number;
  cacheDir?: string;
  workers?: number;
  backend?: 'auto' | 'wasm' | 'cpu';
  /** Runtime of the frozen backbone: 'auto' (onnxruntime when installed and able), 'tfjs', 'onnxruntime'. */
  runtime?: RuntimePreference;
  spec?: BackboneSpec;
}

export interface PathFeatures {
  path: string;
  features: ImageFeatures | null;
  hash: string | null;
  error?: string;
}

/** Bumped when the way variants are made changes, so stale cached variants are not reused. */
const PSEUDO_VERSION = 'cutpaste-v1';

/** Outlier images read at most: enough variety, a bounded first extraction. */
export const OUTLIER_MAX = 500;

export interface PseudoPool {
  /** Per training normal, the pseudo anomalies that may stand in for it. */
  pool: ImageFeatures[][];
  warnings: string[];
}

export class FeatureSession {
  private constructor(
    readonly spec: BackboneSpec,
    readonly levels: number,
    readonly extractor: FeatureExtractor,
  ) {}

  static async open(opts: FeatureSessionOptions = {}): Promise<FeatureSession> {
    const spec =
      opts.spec ??
      backboneSpecFor(opts.backbone ?? 'mobilenet', {
        inputSize: opts.inputSize ?? 224,
        inputShape: opts.inputShape,
        featureLayer: opts.featureLayer,
        tapLayers: opts.tapLayers,
      });
    const levels = opts.levels ?? 2;
    // Training and scoring of the heads run in this thread, feature extraction in workers:
    // both need the fast backend.
    await initBackend({ prefer: opts.backend });
    const extractor = await createFeatureExtractor({
      spec,
      levels,
      cacheDir: opts.cacheDir,
      workers: opts.workers,
      backend: opts.backend,
      runtime: opts.runtime,
    });
    return new FeatureSession(spec, levels, extractor);
  }

  get backend() {
    return this.extractor.backend;
  }

  /** Whether this session computes the features of a model trained on `backbone`. */
  serves(backbone: {
    id: string;
    inputSize: number;
    inputShape?: InputShape;
    featureLayer: string;
    levels: number;
    tapLayers?: string[];
  }): boolean {
    const s = this.spec;
    return (
      !s.fineTuned &&
      s.id === backbone.id &&
      s.inputSize === backbone.inputSize &&
      sameShape(s.inputShape, backbone.inputShape) &&
      s.featureLayer === backbone.featureLayer &&
      this.levels === backbone.levels &&
      // Features with more taps serve a model that reads fewer: its heads read what they know.
      (backbone.tapLayers ?? []).every((t) => (s.tapLayers ?? []).includes(t))
    );
  }

  /** Starts the backbone workers now, so that the first image not in the cache does not wait for them. */
  warm(): Promise<void> {
    return this.extractor.warm();
  }

  /** What runs the backbone (features/runtime.ts), once a feature had to be computed. */
  get runtime(): string {
    return this.extractor.runtime;
  }

  async ofPaths(
    paths: string[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<PathFeatures[]> {
    const results = await this.extractor.extract(
      paths.map((path) => ({ path })),
      onProgress,
    );
    return results.map((r, i) =>
      r.ok
        ? { path: paths[i], features: r.features, hash: r.hash }
        : { path: paths[i], features: null, hash: null, error: r.error },
    );
  }

  /**
   * `perImage` cut-paste variants of each normal. A variant depends only on the source
   * image's content and its index, so every seed, split and retrain shares the cache.
   */
  async pseudoPool(
    normals: { path: string; hash: string }[],
    perImage: number,
    onProgress?: (done: number, total: number) => void,
  ): Promise<ImageFeatures[][]> {
    const { inputShape } = this.spec;
    const size = inputDims(this.spec);
    // A square input keeps the key it always had, so cached variants stay valid.
    const sizeKey = inputShape ? `${size.width}x${size.height}` : `${this.spec.inputSize}`;
    const inputs = [];
    for (const n of normals) {
      for (let j = 0; j < perImage; j++) {
        const key = `${n.hash}/${PSEUDO_VERSION}/${sizeKey}/${j}`;
        inputs.push({
          key,
          image: async () => {
            const img = await loadImageResized(n.path, size);
            return cutPaste(img, new Rng(seedFromKey(key))).image;
          },
        });
      }
    }
    const results = await this.extractor.extract(inputs, onProgress);
    const pool: ImageFeatures[][] = normals.map(() => []);
    results.forEach((r, k) => {
      if (r.ok) pool[Math.floor(k / perImage)].push(r.features);
    });
    return pool;
  }

  /**
   * Outlier exposure (dra.md, the paper's choice for medical data): the pseudo anomalies are
   * images of another data set, up to OUTLIER_MAX of them (a seeded sample), dealt out to the
   * normals in a seeded order so that the sampler draws them like cut-paste variants.
   */
  async outlierPool(
    dir: string,
    normals: number,
    perImage: number,
    seed: number,
    onProgress?: (done: number, total: number) => void,
  ): Promise<PseudoPool> {
    let files: string[];
    try {
      files = await listImagesDeep(dir);
    } catch (err) {
      throw new EngineError(`Outlier images: cannot read the folder ${dir} (${(err as Error).message}).`);
    }
    const rng = new Rng(seed);
    const chosen = files.length > OUTLIER_MAX ? rng.sample(files, OUTLIER_MAX).sort() : files;
    const feats = await this.ofPaths(chosen, onProgress);
    const warnings = feats.flatMap((f) => (f.error ? [`outlier image skipped: ${f.error}`] : []));
    const usable = feats.flatMap((f) => (f.features ? [f.features] : []));
    if (usable.length === 0) {
      throw new EngineError(
        `Outlier images: no readable image in ${dir} (${files.length} image files found). ` +
          'Outlier exposure needs a folder of images from another data set.',
      );
    }
    const order = rng.shuffle(usable.map((_, i) => i));
    const pool = Array.from({ length: normals }, (_, i) =>
      Array.from({ length: perImage }, (_, j) => usable[order[(i * perImage + j) % usable.length]]),
    );
    return { pool, warnings };
  }

  /** The pseudo anomalies that settings.pseudo asks for: cut-paste variants, or outlier images. */
  async pseudoFor(
    settings: TrainSettings,
    normals: { path: string; hash: string }[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<PseudoPool> {
    if (settings.pseudo === 'outlier') {
      if (!settings.outlierDir) {
        throw new EngineError(
          "Pseudo anomalies 'outlier' need a folder of images from another data set (settings.outlierDir, or --outliers DIR).",
        );
      }
      return this.outlierPool(
        settings.outlierDir,
        normals.length,
        settings.pseudoPoolPerImage,
        settings.seed,
        onProgress,
      );
    }
    return { pool: await this.pseudoPool(normals, settings.pseudoPoolPerImage, onProgress), warnings: [] };
  }

  close(): Promise<void> {
    return this.extractor.close();
  }
}

function seedFromKey(key: string): number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return h >>> 0;
}
