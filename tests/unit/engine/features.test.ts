import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RgbImage } from '../../../src-main/data/types';
import { defaultBackboneSpec } from '../../../src-main/engine/backbone';
import {
  createFeatureExtractor,
  type FeatureExtractor,
  type FeatureResult,
} from '../../../src-main/engine/features';
import type { ImageFeatures } from '../../../src-main/engine/types';
import { LUMA_BINS, lumaHistogram } from '../../../src-main/engine/features/luma-histogram';

const spec = defaultBackboneSpec(224);
const haveWeights = existsSync(path.join(spec.modelDir, 'model.json'));
// SWAN_BACKEND=cpu forces the pure-JS backend everywhere (workers included).
const EXPECTED_BACKEND = process.env.SWAN_BACKEND === 'cpu' ? 'cpu' : 'wasm';

function noise(w: number, h: number, seed: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s >>> 24;
  }
  return { width: w, height: h, data };
}

async function writePng(file: string, img: RgbImage): Promise<void> {
  await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .png()
    .toFile(file);
}

function features(r: FeatureResult | undefined): ImageFeatures {
  if (!r || !r.ok) throw new Error(`expected features, got ${JSON.stringify(r)}`);
  return r.features;
}

function maxDiff(a: ImageFeatures, b: ImageFeatures): number {
  let m = 0;
  a.levels.forEach((l, k) => {
    const o = b.levels[k]!;
    expect([o.h, o.w, o.c]).toEqual([l.h, l.w, l.c]);
    for (let i = 0; i < l.data.length; i++) m = Math.max(m, Math.abs(l.data[i]! - o.data[i]!));
  });
  // The pooled statistics for the global head travel (and are cached) with the maps.
  expect(b.pooled?.length).toBe(a.pooled?.length);
  a.pooled?.forEach((v, i) => (m = Math.max(m, Math.abs(v - b.pooled![i]!))));
  return m;
}

describe.skipIf(!haveWeights)('feature extraction (MobileNet, wasm)', () => {
  let dir: string;
  let files: string[];
  let corrupt: string;
  let notImage: string;
  let inProcess: FeatureExtractor;
  let cacheA: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'swan-features-'));
    files = [];
    for (let i = 0; i < 5; i++) {
      const f = path.join(dir, `img${i}.png`);
      await writePng(f, noise(60 + 10 * i, 50 + 7 * i, i + 1));
      files.push(f);
    }
    // A truncated PNG and a text file with an image name.
    corrupt = path.join(dir, 'truncated.png');
    const bytes = await readFile(files[0]!);
    await writeFile(corrupt, bytes.subarray(0, Math.floor(bytes.length / 3)));
    notImage = path.join(dir, 'notes.png');
    await writeFile(notImage, 'this is not an image\n');
    cacheA = path.join(dir, 'cacheA');
    inProcess = await createFeatureExtractor({
      spec,
      levels: 2,
      cacheDir: cacheA,
      workers: 0,
      backend: 'wasm',
    });
  });

  afterAll(async () => {
    await inProcess?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('gives both pyramid levels: [7,7,768] at 224 and [4,4,768] at 112', async () => {
    expect(inProcess.backend.name).toBe(EXPECTED_BACKEND);
    const [r] = await inProcess.extract([{ path: files[0]! }]);
    const f = features(r);
    expect(f.levels.map((l) => [l.h, l.w, l.c])).toEqual([
      [7, 7, 768],
      [4, 4, 768],
    ]);
    expect(f.levels[0]!.data.length).toBe(7 * 7 * 768);
    expect(f.levels[0]!.data.some((v) => v > 0)).toBe(true);
    // conv_pw_11's per-channel mean and standard deviation (2 x 384 values), then the input's
    // luminance histogram (square roots of shares: their squares add up to 1); none negative.
    expect(f.pooled?.length).toBe(768 + LUMA_BINS);
    expect(f.pooled!.every((v) => v >= 0) && f.pooled!.some((v) => v > 0)).toBe(true);
    expect(f.pooled!.subarray(768).reduce((s, v) => s + v * v, 0)).toBeCloseTo(1, 5);
    if (!r!.ok) throw new Error();
    expect(r!.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reports a corrupt or non-image file by name and carries on with the rest', async () => {
    const progress: number[] = [];
    const out = await inProcess.extract(
      [
        { path: files[1]! },
        { path: corrupt },
        { path: files[2]! },
        { path: notImage },
        { path: path.join(dir, 'missing.png') },
      ],
      (done, total) => {
        expect(total).toBe(5);
        progress.push(done);
      },
    );
    expect(out.map((r) => r.ok)).toEqual([true, false, true, false, false]);
    const errors = out.flatMap((r) => (r.ok ? [] : [r.error]));
    expect(errors[0]).toContain('truncated.png');
    expect(errors[1]).toContain('notes.png');
    expect(errors[1]).toMatch(/not an image/);
    expect(errors[2]).toMatch(/missing\.png.*not found/);
    expect(progress[progress.length - 1]).toBe(5);
  });

  it('serves identical data from the cache, faster, and recomputes a corrupt cache file', async () => {
    const fresh = path.join(dir, 'cacheFresh');
    const fx = await createFeatureExtractor({
      spec,
      levels: 2,
      cacheDir: fresh,
      workers: 0,
      backend: 'wasm',
    });
    try {
      const inputs = files.map((p) => ({ path: p }));
      let t = performance.now();
      const cold = await fx.extract(inputs);
      const coldMs = performance.now() - t;
      t = performance.now();
      const warm = await fx.extract(inputs);
      const warmMs = performance.now() - t;
      cold.forEach((r, i) => expect(maxDiff(features(r), features(warm[i]))).toBe(0));
      expect(warmMs).toBeLessThan(coldMs / 3);

      const sub = await readdir(path.join(fresh, 'features'), { recursive: true });
      const cacheFiles = sub.filter((f) => f.endsWith('.f32')).map((f) => path.join(fresh, 'features', f));
      expect(cacheFiles).toHaveLength(files.length);
      expect(sub.some((f) => f.endsWith('.tmp'))).toBe(false);
      // Flip one payload byte of every cache file and truncate one: each must be recomputed.
      for (const f of cacheFiles) {
        const b = await readFile(f);
        b[b.length - 5] ^= 0xff;
        await writeFile(f, b);
      }
      await writeFile(cacheFiles[0]!, (await readFile(cacheFiles[0]!)).subarray(0, 100));
      const again = await fx.extract(inputs);
      cold.forEach((r, i) => expect(maxDiff(features(r), features(again[i]))).toBe(0));
    } finally {
      await fx.close();
    }
  });

  it('takes in-memory images under a key, making them only on a cache miss', async () => {
    let made = 0;
    const make = async () => {
      made++;
      return noise(80, 64, 99);
    };
    const [a] = await inProcess.extract([{ key: 'variant/1', image: make }]);
    const [b] = await inProcess.extract([
      { key: 'variant/1', image: make },
      { key: 'variant/2', image: noise(32, 32, 5) },
    ]);
    expect(made).toBe(1);
    expect(maxDiff(features(a), features(b))).toBe(0);
    const [bad] = await inProcess.extract([
      { key: 'broken', image: { width: 10, height: 10, data: new Uint8Array(7) } },
    ]);
    expect(bad!.ok).toBe(false);
    if (!bad!.ok) expect(bad!.error).toContain('broken');
  });

  it('computes the same features in two worker threads as in-process, in input order', async () => {
    const pool = await createFeatureExtractor({
      spec,
      levels: 2,
      cacheDir: path.join(dir, 'cacheB'),
      workers: 2,
      backend: 'wasm',
      batchSize: 2,
    });
    try {
      expect(pool.backend.name).toBe(EXPECTED_BACKEND);
      const inputs = [...files, corrupt, files[0]!].map((p) => ({ path: p }));
      const viaWorkers = await pool.extract([...inputs, { key: 'mem', image: noise(70, 70, 3) }]);
      const local = await inProcess.extract([...inputs, { key: 'mem', image: noise(70, 70, 3) }]);
      expect(viaWorkers.map((r) => r.ok)).toEqual([true, true, true, true, true, false, true, true]);
      viaWorkers.forEach((r, i) => {
        if (r.ok) expect(maxDiff(features(r), features(local[i]))).toBeLessThan(1e-5);
      });
    } finally {
      await pool.close();
    }
  });
});

describe('luminance histogram (appended to the pooled statistics)', () => {
  it('gives the square roots of the pixel shares per Rec. 601 luma bin', () => {
    // Black, white, two mid greys and pure red (luma 76.2: bin 19 of 64).
    const img: RgbImage = {
      width: 5,
      height: 1,
      data: Uint8Array.from([0, 0, 0, 255, 255, 255, 128, 128, 128, 128, 128, 128, 255, 0, 0]),
    };
    const h = lumaHistogram(img);
    expect(h).toHaveLength(LUMA_BINS);
    const expected = new Map([
      [0, Math.sqrt(0.2)],
      [19, Math.sqrt(0.2)],
      [32, Math.sqrt(0.4)],
      [63, Math.sqrt(0.2)],
    ]);
    h.forEach((v, k) => expect(v).toBeCloseTo(expected.get(k) ?? 0, 6));
    // Two bins: black and red below mid-grey; the greys (exactly 128) and white above.
    expect(Array.from(lumaHistogram(img, 2))).toEqual([
      Math.fround(Math.sqrt(0.4)),
      Math.fround(Math.sqrt(0.6)),
    ]);
  });
});
