/**
 * Full mode (backbone fine-tuned) through the path the app uses: the engine worker (EngineHost,
 * the real engine) trains on the pure-JS cpu backend, asked for with SWAN_BACKEND=cpu as a user
 * would, with tiny inputs and a few steps; the saved model holds the fine-tuned backbone and its
 * scores come from it.
 */
import { existsSync } from 'node:fs';
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadImageResized } from '../../../src-main/data/decode';
import { initBackend } from '../../../src-main/engine/backend';
import { defaultBackboneSpec, loadBackbone } from '../../../src-main/engine/backbone';
import { scoreFeatures } from '../../../src-main/engine/infer';
import { loadModel, saveModel } from '../../../src-main/engine/model-file';
import { applyBackboneWeights } from '../../../src-main/engine/train/train-full';
import type { ImageFeatures, TrainProgress } from '../../../src-main/engine/types';
import { EngineHost, JobCancelled } from '../../../src-main/worker/host';
import type { ScoredItem, TrainJob } from '../../../src-main/worker/protocol';
import { makePng, tempDir } from './helpers';

// 32 pixels, one pyramid level and only MobileNet's last block fine-tuned: the pure-JS cpu
// backend's filter gradient is a plain loop (seconds for that one 768x768 convolution, minutes
// for the whole backbone), and the test must stay fast. The paper's recipe trains everything.
const INPUT = 32;
const TUNED_FROM = 'conv_pw_13';
const haveBackbone = existsSync(join(defaultBackboneSpec().modelDir, 'model.json'));

describe.skipIf(!haveBackbone)('full mode through the engine worker (cpu backend, tiny inputs)', () => {
  let tmp: ReturnType<typeof tempDir>;
  let host: EngineHost;
  let job: TrainJob;
  let tests: string[];
  const savedBackend = process.env.SWAN_BACKEND;

  beforeAll(async () => {
    // The worker threads read the environment when they start: the user's way of asking for cpu.
    process.env.SWAN_BACKEND = 'cpu';
    tmp = tempDir('swan-full-');
    const png = async (name: string, brightness: number, seed: number) => {
      const f = join(tmp.dir, name);
      await makePng(f, { size: INPUT, brightness, seed });
      return f;
    };
    const normals = await Promise.all([0, 1, 2, 3].map((k) => png(`good${k}.png`, 90 + 4 * k, k + 1)));
    const anomalies = await Promise.all([0].map((k) => png(`bad${k}.png`, 190, k + 11)));
    tests = await Promise.all([png('test-good.png', 96, 21), png('test-bad.png', 200, 22)]);
    job = {
      normals: normals.map((path, i) => ({ id: `g${i}`, path })),
      anomalies: anomalies.map((path, i) => ({ id: `d${i}`, path, cls: 'bright' })),
      outDir: join(tmp.dir, 'model'),
      inputSize: INPUT,
      cacheDir: join(tmp.dir, 'cache'),
      validateFolds: 3,
      settings: {
        mode: 'full',
        seed: 1,
        steps: 2,
        batchNormals: 2,
        batchAnomalies: 1,
        referenceCount: 1,
        pyramidLevels: 1,
        fineTuneFrom: TUNED_FROM,
        learningRate: 1e-3,
        globalHead: false,
      },
    };
    host = new EngineHost();
  });

  afterAll(async () => {
    await host?.close();
    tmp?.cleanup();
    if (savedBackend === undefined) delete process.env.SWAN_BACKEND;
    else process.env.SWAN_BACKEND = savedBackend;
  });

  const scoreWith = async (modelDir: string): Promise<ScoredItem[]> => {
    const items: ScoredItem[] = [];
    await host.score(
      // In the engine worker's thread: the same FeatureComputer as a feature worker, one backbone load.
      {
        modelDir,
        cacheDir: job.cacheDir,
        workers: 0,
        items: tests.map((path, id) => ({ id: id + 1, path })),
      },
      (chunk) => items.push(...chunk),
    );
    return items;
  };
  const totals = (items: ScoredItem[]) => items.map((i) => (i.ok ? i.total : NaN));

  it('trains with progress, saves the fine-tuned backbone, and scores with it', async () => {
    const progress: TrainProgress[] = [];
    const trained = await host.train(job, (p) => progress.push(p));
    expect(progress.filter((p) => p.stage === 'train').map((p) => p.step)).toEqual([1, 2]);
    expect(progress.at(-1)).toMatchObject({ stage: 'save', step: 1 });
    expect(trained.settings).toMatchObject({ mode: 'full', steps: 2, backend: 'cpu', inputSize: INPUT });
    // The paper's recipe fills what the job did not set.
    expect(trained.settings).toMatchObject({ weightDecay: 1e-5 });
    expect(trained.warnings.join(' ')).toMatch(/held-out metrics were not measured/);

    const model = await loadModel(job.outDir);
    expect(model.manifest.formatVersion).toBe(2);
    expect(model.manifest.backend?.tag).toBe('cpu');
    expect(Object.keys(model.manifest.files)).toContain('backbone.bin');
    const tuned = model.state.backbone!;

    // The fine-tuned layers' weights changed from the pretrained ones, the frozen ones did not.
    await initBackend({ prefer: 'cpu' });
    const bb = await loadBackbone(defaultBackboneSpec(INPUT));
    const layers = bb.layersModel();
    const pretrained = layers.getWeights().map((w) => w.dataSync() as Float32Array);
    expect(tuned).toHaveLength(pretrained.length);
    const changed = tuned.filter((w, i) => w.data.some((v, j) => Math.abs(v - pretrained[i][j]) > 1e-7));
    const trainable = layers.trainableWeights.filter((w) => w.originalName.startsWith(`${TUNED_FROM}`));
    expect(changed.map((w) => w.name).sort()).toEqual(trainable.map((w) => w.originalName).sort());

    // Scored through the worker (features of the fine-tuned backbone, fused inference)...
    const scored = await scoreWith(job.outDir);
    expect(scored.every((s) => s.ok && s.heatmap !== null)).toBe(true);
    // ...equal what the saved heads give on features the fine-tuned layers model computes here...
    applyBackboneWeights(layers, model.state);
    const here: ImageFeatures[] = [];
    for (const path of tests) {
      const levels = [];
      for (const size of [INPUT]) {
        const img = await loadImageResized(path, size);
        const map = tf.tidy(() =>
          (
            layers.predict(tf.tensor4d(Float32Array.from(img.data), [1, size, size, 3])) as tf.Tensor4D
          ).squeeze([0]),
        ) as tf.Tensor3D;
        const [h, w, c] = map.shape;
        levels.push({ h, w, c, data: map.dataSync() as Float32Array });
        map.dispose();
      }
      here.push({ levels });
    }
    const recomputed = scoreFeatures(model.state, here).map((s) => s.total);
    // ...and differ from the same heads on the frozen backbone's features.
    const frozenDir = join(tmp.dir, 'frozen');
    await cp(job.outDir, frozenDir, { recursive: true });
    await saveModel(frozenDir, { manifest: model.manifest, state: { ...model.state, backbone: undefined } });
    const frozen = totals(await scoreWith(frozenDir));
    const worker = totals(scored);
    const gap = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
    expect(gap(worker, recomputed)).toBeLessThan(1e-3 * Math.max(1, ...worker.map(Math.abs)));
    expect(gap(worker, frozen)).toBeGreaterThan(100 * gap(worker, recomputed));
    bb.dispose();
  }, 300_000);

  it('cancels between steps: no model is left behind', async () => {
    const outDir = join(tmp.dir, 'cancelled');
    let asked = false;
    // Its own worker: independent of the test above.
    const own = new EngineHost();
    const run = own.train({ ...job, outDir, settings: { ...job.settings, steps: 500 } }, (p) => {
      if (p.stage === 'train' && !asked) {
        asked = true;
        own.cancel();
      }
    });
    await expect(run).rejects.toBeInstanceOf(JobCancelled);
    expect(existsSync(outDir)).toBe(false);
    await own.close();
  }, 120_000);
});
