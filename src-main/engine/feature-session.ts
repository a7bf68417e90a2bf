/**
 * Feature extraction for training and scoring, shared by the facade, the benchmark and the
 * app's worker: backbone features of image files, and the pool of cut-paste pseudo-anomaly
 * variants of the training normals, all through the on-disk feature cache.
 */
import { createFeatureExtractor, type FeatureExtractor } from './features';
import { initBackend } from './backend';
import { defaultBackboneSpec } from './backbone';
import { loadImageResized } from '../data/decode';
import { cutPaste } from './train/pseudo-anomaly';
import { Rng } from './util/rng';
import type { BackboneSpec, ImageFeatures } from './types';

export interface FeatureSessionOptions {
  inputSize?: number;
  featureLayer?: string;
  levels?: number;
  cacheDir?: string;
  workers?: number;
  backend?: 'auto' | 'wasm' | 'cpu';
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

export class FeatureSession {
  private constructor(
    readonly spec: BackboneSpec,
    readonly levels: number,
    readonly extractor: FeatureExtractor,
  ) {}

  static async open(opts: FeatureSessionOptions = {}): Promise<FeatureSession> {
    const spec = opts.spec ?? defaultBackboneSpec(opts.inputSize ?? 224, opts.featureLayer);
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
    });
    return new FeatureSession(spec, levels, extractor);
  }

  get backend() {
    return this.extractor.backend;
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
    const size = this.spec.inputSize;
    const inputs = [];
    for (const n of normals) {
      for (let j = 0; j < perImage; j++) {
        const key = `${n.hash}/${PSEUDO_VERSION}/${size}/${j}`;
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

  close(): Promise<void> {
    return this.extractor.close();
  }
}

function seedFromKey(key: string): number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return h >>> 0;
}
