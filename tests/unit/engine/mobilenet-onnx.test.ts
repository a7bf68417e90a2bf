import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src-main/engine/backend';
import { backboneSpecFor } from '../../../src-main/engine/backbone';
import { loadMobilenetModel } from '../../../src-main/engine/backbone/mobilenet';
import { planFused } from '../../../src-main/engine/backbone/fuse';
import { onnxKernel } from '../../../src-main/engine/backbone/fused-onnx';
import { onnxruntimeVersion } from '../../../src-main/engine/backbone/onnx-runtime';
import { createFeatureExtractor } from '../../../src-main/engine/features';
import { chooseRuntime } from '../../../src-main/engine/features/runtime';
import type { ImageFeatures } from '../../../src-main/engine/types';

const haveOrt = (await onnxruntimeVersion()).version !== null;
const spec = backboneSpecFor('mobilenet', { tapLayers: ['conv_pw_11_relu'] });
const PANDA = path.join(spec.modelDir, '..', 'panda.jpg');
const haveWeights = existsSync(path.join(spec.modelDir, 'model.json')) && existsSync(PANDA);

/** Largest |a - b| and the relative L2 error ||a - b|| / ||b||. */
function diff(a: Float32Array, b: Float32Array): { max: number; rel: number } {
  expect(a.length).toBe(b.length);
  let max = 0;
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    const d = a[i]! - b[i]!;
    max = Math.max(max, Math.abs(d));
    num += d * d;
    den += b[i]! ** 2;
  }
  return { max, rel: Math.sqrt(num / den) };
}

describe('ONNX kernel layouts', () => {
  it('moves every TF conv and depthwise weight to its ONNX place', () => {
    // kh=2, kw=3, a=4, b=5: value = the TF index, so each destination names its source.
    const shape = [2, 3, 4, 5];
    const data = Float32Array.from({ length: 120 }, (_, i) => i);
    const conv = onnxKernel({ data, shape }, false);
    expect(conv.dims).toEqual([5, 4, 2, 3]);
    const dw = onnxKernel({ data, shape }, true);
    expect(dw.dims).toEqual([20, 1, 2, 3]);
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 3; j++)
        for (let p = 0; p < 4; p++)
          for (let q = 0; q < 5; q++) {
            const src = ((i * 3 + j) * 4 + p) * 5 + q;
            expect(conv.data[((q * 4 + p) * 2 + i) * 3 + j]).toBe(src);
            expect(dw.data[((p * 5 + q) * 2 + i) * 3 + j]).toBe(src);
          }
  });
});

describe.skipIf(!haveWeights || !haveOrt)('MobileNetV1 on onnxruntime-node', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'swan-mobilenet-onnx-'));
    await initBackend({ prefer: 'wasm' });
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('plans the model from its topology: every conv with BatchNorm and relu6 folded in', async () => {
    const model = await loadMobilenetModel(spec);
    const plan = planFused(model, 'conv_pw_13_relu', ['conv_pw_11_relu'])!;
    model.dispose();
    // conv1 + 13 depthwise/pointwise pairs, nothing else.
    expect(plan.ops.map((o) => o.op)).toEqual(Array(27).fill('conv'));
    expect(plan.ops.every((o) => o.op === 'conv' && o.act === 'relu6')).toBe(true);
    expect(plan.valueOf).toEqual({ conv_pw_13_relu: 'conv_pw_13_relu', conv_pw_11_relu: 'conv_pw_11_relu' });
    expect(plan.ops.filter((o) => o.op === 'conv' && o.depthwise)).toHaveLength(13);
  });

  it('is chosen automatically, and gives the TF.js features to float rounding: both levels, the tap and the pooled vector', async () => {
    const auto = await chooseRuntime(spec, { cacheDir: dir, workers: 2 });
    expect(auto).toMatchObject({ kind: 'onnxruntime', threads: 1 });
    const saved = process.env.SWAN_RUNTIME;
    process.env.SWAN_RUNTIME = 'tfjs';
    try {
      expect((await chooseRuntime(spec, { cacheDir: dir, workers: 2 })).kind).toBe('tfjs');
    } finally {
      if (saved === undefined) delete process.env.SWAN_RUNTIME;
      else process.env.SWAN_RUNTIME = saved;
    }
    const run = async (runtime: 'tfjs' | 'onnxruntime'): Promise<{ f: ImageFeatures; runtime: string }> => {
      const fx = await createFeatureExtractor({
        spec,
        levels: 2,
        workers: 0,
        runtime,
        cacheDir: path.join(dir, `cache-${runtime}`),
      });
      try {
        const [r] = await fx.extract([{ path: PANDA }]);
        if (!r!.ok) throw new Error(r!.error);
        return { f: r!.features, runtime: fx.runtime };
      } finally {
        await fx.close();
      }
    };
    const [a, b] = [await run('tfjs'), await run('onnxruntime')];
    expect(a.runtime).toBe('tfjs (requested)');
    expect(b.runtime).toMatch(/^onnxruntime-node \d/);
    expect(b.f.levels.map((m) => [m.h, m.w, m.c])).toEqual([
      [7, 7, 768],
      [4, 4, 768],
    ]);
    const tap = b.f.taps!.conv_pw_11_relu!;
    expect([tap.h, tap.w, tap.c]).toEqual([14, 14, 384]);
    const d = {
      level0: diff(b.f.levels[0]!.data, a.f.levels[0]!.data),
      level1: diff(b.f.levels[1]!.data, a.f.levels[1]!.data),
      tap: diff(tap.data, a.f.taps!.conv_pw_11_relu!.data),
      pooled: diff(b.f.pooled!, a.f.pooled!),
    };
    console.log('MobileNet onnxruntime vs TF.js wasm (max abs, relative L2):', d);
    // Activations are 0..6 (relu6); float32 sums in another order differ by ~5e-6 relative.
    // A wrong padding side or kernel layout gives errors of order 1e-1.
    for (const e of Object.values(d)) {
      expect(e.rel).toBeLessThan(2e-5);
      expect(e.max).toBeLessThan(1e-3);
    }
    // The luminance histogram is the input's, the same bytes on both paths.
    expect(b.f.pooled!.subarray(768)).toEqual(a.f.pooled!.subarray(768));
  });
});
