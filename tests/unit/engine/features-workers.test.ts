import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultBackboneSpec } from '../../../src-main/engine/backbone';
import { createFeatureExtractor } from '../../../src-main/engine/features';
import { EngineError } from '../../../src-main/engine/types';

const spec = defaultBackboneSpec(224);
const haveWeights = existsSync(path.join(spec.modelDir, 'model.json'));

// Stand-in workers (selected with SWAN_FEATURE_WORKER) that fail in the ways real ones can.
const CRASH_ON_BATCH = `
import { parentPort } from 'node:worker_threads';
parentPort.on('message', (m) => {
  if (m.type === 'init') parentPort.postMessage({ type: 'ready', backend: { name: 'wasm', gpu: false, native: false, description: 'stand-in' } });
  else process.exit(3);
});`;
const FAIL_INIT = `
import { parentPort } from 'node:worker_threads';
parentPort.on('message', () => parentPort.postMessage({ type: 'init-error', error: 'no backbone here' }));`;

describe.skipIf(!haveWeights)('feature worker failures', () => {
  let dir: string;
  let image: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'swan-fworkers-'));
    await writeFile(path.join(dir, 'crash.mjs'), CRASH_ON_BATCH);
    await writeFile(path.join(dir, 'fail-init.mjs'), FAIL_INIT);
    image = path.join(dir, 'a.png');
    await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 200, g: 10, b: 90 } } })
      .png()
      .toFile(image);
  });
  afterEach(() => {
    delete process.env.SWAN_FEATURE_WORKER;
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a worker that dies mid-batch fails only its images, by name, and nothing hangs', async () => {
    process.env.SWAN_FEATURE_WORKER = path.join(dir, 'crash.mjs');
    const fx = await createFeatureExtractor({ spec, cacheDir: path.join(dir, 'cache'), workers: 1 });
    const out = await fx.extract([{ path: image }, { path: path.join(dir, 'missing.png') }]);
    expect(out[0]).toEqual({
      ok: false,
      error: expect.stringMatching(/a\.png: feature worker exited \(code 3\)/),
    });
    expect(out[1]!.ok).toBe(false);
    const later = await fx.extract([{ path: image }]);
    expect(later[0]).toEqual({ ok: false, error: expect.stringContaining('no feature worker left') });
    await fx.close();
  });

  it('a worker that cannot load the backbone fails the first extraction that needs it, with its reason', async () => {
    process.env.SWAN_FEATURE_WORKER = path.join(dir, 'fail-init.mjs');
    // Workers start on the first cache miss, so creating the extractor does not load them.
    const fx = await createFeatureExtractor({ spec, cacheDir: path.join(dir, 'cache-init'), workers: 2 });
    const err = await fx.extract([{ path: image }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect((err as Error).message).toContain('no backbone here');
    await fx.close(); // closing after a failed start does not throw
  });

  it('serves cached features without starting any worker', async () => {
    const cacheDir = path.join(dir, 'cache-warm');
    delete process.env.SWAN_FEATURE_WORKER;
    const real = await createFeatureExtractor({ spec, cacheDir, workers: 1 });
    const [first] = await real.extract([{ path: image }]);
    await real.close();
    expect(first!.ok).toBe(true);
    // Workers that cannot start: a warm cache must not need them.
    process.env.SWAN_FEATURE_WORKER = path.join(dir, 'fail-init.mjs');
    const fx = await createFeatureExtractor({ spec, cacheDir, workers: 2 });
    const [again] = await fx.extract([{ path: image }]);
    expect(again).toEqual(first);
    await fx.close();
  });

  it('refuses bad options and a missing model folder, naming the path', async () => {
    await expect(createFeatureExtractor({ spec, levels: 4, workers: 0 })).rejects.toThrow(/levels/);
    await expect(createFeatureExtractor({ spec, workers: -1 })).rejects.toThrow(/workers/);
    const modelDir = path.join(dir, 'no-such-model');
    await expect(createFeatureExtractor({ spec: { ...spec, modelDir }, workers: 0 })).rejects.toThrow(
      modelDir,
    );
  });
});
