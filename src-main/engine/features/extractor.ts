/**
 * Feature extraction with an on-disk cache: hashes each input, serves cached maps, and sends
 * the misses in batches to the workers (or computes them in this thread).
 */
import { LRUCache } from 'lru-cache';
import { assertBackboneDir, backboneWeightsIdentity } from '../backbone';
import { backendTag, initBackend } from '../backend';
import { EngineError } from '../types';
import type { ImageFeatures } from '../types';
import { defaultCacheDir, FeatureCache, sha256 } from './cache';
import { FileHashes } from './file-hashes';
import { describeError, FeatureComputer } from './compute';
import { levelDims } from './geometry';
import { WorkerPool } from './pool';
import { chooseRuntime } from './runtime';
import { POOLED_CONTENT } from './luma-histogram';
import type {
  FeatureExtractor,
  FeatureExtractorOptions,
  FeatureInput,
  FeatureResult,
  WorkItem,
  WorkResult,
} from './types';

/** Hashing and cache reads in flight at once: enough to hide file latency, few file handles. */
const LOOKUP_CONCURRENCY = 8;

/**
 * Features kept in memory by content hash within a byte budget: a retrain in a warm engine
 * reads its training images' and pseudo anomalies' maps from here instead of from disk.
 * Default 1 GiB (SWAN_FEATURE_MEMORY_MB overrides; 0 turns it off).
 */
function memoryCache(): LRUCache<string, ImageFeatures> | null {
  const mb = Number(process.env.SWAN_FEATURE_MEMORY_MB ?? 1024);
  if (!Number.isFinite(mb) || mb <= 0) return null;
  return new LRUCache<string, ImageFeatures>({
    maxSize: mb * 2 ** 20,
    sizeCalculation: (f) => f.levels.reduce((s, m) => s + m.data.byteLength, f.pooled?.byteLength ?? 0) || 1,
  });
}

interface Engine {
  backend: FeatureExtractor['backend'];
  runtime: string;
  run(items: WorkItem[]): Promise<WorkResult[]>;
  close(): Promise<void>;
}

async function startEngine(
  opts: FeatureExtractorOptions,
  levels: number,
  workers: number,
  cacheDir: string,
): Promise<Engine> {
  const backend = opts.backend ?? 'auto';
  const runtime = await chooseRuntime(opts.spec, {
    prefer: opts.runtime,
    cacheDir,
    workers: Math.max(1, workers),
  });
  if (workers === 0) {
    const computer = await FeatureComputer.create(opts.spec, levels, backend, runtime);
    return {
      backend: computer.backend,
      runtime: runtime.description,
      run: (items) => computer.compute(items),
      close: async () => computer.dispose(),
    };
  }
  const pool = await WorkerPool.start(workers, { spec: opts.spec, levels, backend, runtime });
  return {
    backend: pool.backend,
    runtime: runtime.description,
    run: (items) => pool.run(items),
    close: () => pool.close(),
  };
}

function nameOf(input: FeatureInput): string {
  return 'path' in input ? input.path : input.key;
}

export async function createFeatureExtractor(opts: FeatureExtractorOptions): Promise<FeatureExtractor> {
  const { spec } = opts;
  const levels = opts.levels ?? 2;
  const workers = opts.workers ?? 2;
  const batchSize = opts.batchSize ?? 8;
  const smallest = levelDims(spec, Math.max(0, levels - 1));
  if (!Number.isInteger(levels) || levels < 1 || Math.min(smallest.height, smallest.width) < 32) {
    throw new EngineError(
      `Pyramid levels must be >= 1 and keep every level at least 32 pixels (got ${levels})`,
    );
  }
  if (!Number.isInteger(workers) || workers < 0)
    throw new EngineError(`workers must be >= 0 (got ${workers})`);
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new EngineError(`batchSize must be >= 1 (got ${batchSize})`);
  assertBackboneDir(spec);
  const tapLayers = spec.tapLayers ?? [];
  // The workers (each loads the backbone) start on the first cache miss: a retrain whose
  // features are all cached never pays for them, and they do not compete with it for the CPU.
  // Until then the backend is this thread's: the workers pick the same one (same packages).
  const threadBackend = await initBackend({ prefer: opts.backend });
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  // Not keyed on the runtime: onnxruntime and TF.js agree to float rounding (resnet50 and
  // mobilenet-onnx tests), well below what moves a score.
  const cache = new FeatureCache(cacheDir, {
    backboneId: spec.id,
    weights: await backboneWeightsIdentity(spec),
    featureLayer: spec.featureLayer,
    pooledLayer: spec.pooledLayer ?? null,
    pooledContent: spec.pooledLayer ? POOLED_CONTENT : null,
    inputSize: spec.inputSize,
    ...(spec.inputShape ? { inputShape: spec.inputShape } : {}),
    levels,
    backend: backendTag(threadBackend),
    ...(spec.fineTuned ? { fineTuned: spec.fineTuned.sha256 } : {}),
    ...(tapLayers.length > 0 ? { tapLayers } : {}),
  });
  const memory = memoryCache();
  const fileHashes = new FileHashes();
  let started: Promise<Engine> | null = null;
  const engineNow = (): Promise<Engine> => (started ??= startEngine(opts, levels, workers, cacheDir));
  let engineBackend: FeatureExtractor['backend'] | null = null;
  let engineRuntime: string | null = null;

  async function extract(
    inputs: FeatureInput[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<FeatureResult[]> {
    const total = inputs.length;
    // A small request is shared out so that every worker computes part of it (the app scores
    // in chunks of 8: one batch of 8 kept one worker busy and the other idle).
    const perBatch = Math.max(1, Math.min(batchSize, Math.ceil(total / Math.max(1, workers))));
    const results: (FeatureResult | undefined)[] = new Array(total);
    let done = 0;
    const settle = (indices: number[], r: FeatureResult) => {
      for (const i of indices) results[i] = r;
      done += indices.length;
      onProgress?.(done, total);
    };
    // Inputs of the same content are computed once.
    const waiting = new Map<string, number[]>();
    const batches: Promise<void>[] = [];
    const writes: Promise<void>[] = [];
    let batch: { hash: string; name: string; item: WorkItem }[] = [];

    const flush = () => {
      if (batch.length === 0) return;
      const sent = batch;
      batch = [];
      batches.push(
        engineNow()
          .then((engine) => {
            engineBackend = engine.backend;
            engineRuntime = engine.runtime;
            return engine.run(sent.map((b) => b.item));
          })
          .then((out) => {
            sent.forEach((b, k) => {
              const r = out[k]!;
              const indices = waiting.get(b.hash)!;
              waiting.delete(b.hash);
              if (r.ok) {
                const features: ImageFeatures = { levels: r.levels };
                if (r.pooled) features.pooled = r.pooled;
                if (r.taps) features.taps = r.taps;
                writes.push(cache.write(b.hash, features));
                memory?.set(b.hash, features);
                settle(indices, { ok: true, features, hash: b.hash });
              } else {
                const error = r.error.includes(b.name) ? r.error : `${b.name}: ${r.error}`;
                settle(indices, { ok: false, error });
              }
            });
          }),
      );
    };

    const lookup = async (i: number) => {
      const input = inputs[i]!;
      const name = nameOf(input);
      let hash: string;
      try {
        hash = 'path' in input ? await fileHashes.of(input.path) : sha256(`key:${input.key}`);
      } catch (err) {
        settle([i], { ok: false, error: describeError(err) });
        return;
      }
      const same = waiting.get(hash);
      if (same) {
        same.push(i);
        return;
      }
      waiting.set(hash, [i]);
      let hit = memory?.get(hash) ?? null;
      if (!hit) {
        hit = await cache.read(hash);
        if (hit) memory?.set(hash, hit);
      }
      if (hit) {
        const indices = waiting.get(hash)!;
        waiting.delete(hash);
        settle(indices, { ok: true, features: hit, hash });
        return;
      }
      let item: WorkItem;
      if ('path' in input) {
        item = { kind: 'path', path: input.path };
      } else {
        try {
          const image = typeof input.image === 'function' ? await input.image() : input.image;
          item = { kind: 'image', label: input.key, image };
        } catch (err) {
          const indices = waiting.get(hash)!;
          waiting.delete(hash);
          settle(indices, { ok: false, error: `${name}: ${describeError(err)}` });
          return;
        }
      }
      batch.push({ hash, name, item });
      if (batch.length >= perBatch) flush();
    };

    let next = 0;
    const lanes = Array.from({ length: Math.min(LOOKUP_CONCURRENCY, total) }, async () => {
      while (next < total) await lookup(next++);
    });
    await Promise.all(lanes);
    flush();
    await Promise.all(batches);
    await Promise.all(writes);
    return results.map((r, i) => r ?? { ok: false, error: `${nameOf(inputs[i]!)}: not processed` });
  }

  return {
    get backend() {
      return engineBackend ?? threadBackend;
    },
    get runtime() {
      return engineRuntime ?? 'not started (every feature so far came from the cache)';
    },
    extract,
    warm: async () => {
      await engineNow();
    },
    close: async () => {
      // A start that failed has nothing to close; its error reached the extraction that needed it.
      const engine = started ? await started.catch(() => null) : null;
      await engine?.close();
    },
  };
}
