/**
 * The model input's shape (features/geometry.ts): square unless a project's images are
 * elongated, then the short side is inputSize and the long side keeps their median aspect;
 * real PNGs, the real backbone, the saved model and its scorer.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openScorer, trainModel } from '../../../src-main/engine/engine';
import { expectedLevelShapes } from '../../../src-main/engine/backbone/catalog';
import { shapeForAspects, shapeForImages } from '../../../src-main/engine/features/geometry';
import { heatmapPng } from '../../../src-main/project/heatmap-image';
import { makePng, tempDir } from '../app/helpers';

describe('input shape from the images', () => {
  it('stays square for near-square images and keeps the aspect of elongated ones', () => {
    expect(shapeForAspects(224, [1])).toBeUndefined();
    // HeadCT's ~821x957 and anything below 1.5: square, as every model before.
    expect(shapeForAspects(224, [957 / 821, 1.2, 0.9])).toBeUndefined();
    expect(shapeForAspects(224, [1.49])).toBeUndefined();
    // KolektorSDD's ~250x630: 224 wide, 224 x 2.52 rounded to the stride (32) tall.
    expect(shapeForAspects(224, [2.468, 2.516, 2.568])).toEqual({ height: 576, width: 224 });
    expect(shapeForAspects(224, [0.4])).toEqual({ height: 224, width: 576 });
    // The median decides: a few odd images do not.
    expect(shapeForAspects(224, [1, 1, 1, 2.5, 2.5])).toBeUndefined();
    expect(shapeForAspects(224, [])).toBeUndefined();
    expect(shapeForAspects(224, [NaN, 0, -1])).toBeUndefined();
  });

  it('gives the feature map shapes the import check expects', () => {
    const tall = expectedLevelShapes({
      id: 'mobilenet_v1_0.75',
      inputSize: 224,
      inputShape: { height: 576, width: 224 },
      featureLayer: 'conv_pw_13_relu',
      levels: 2,
    });
    expect(tall).toEqual({
      shapes: [
        { h: 18, w: 7, c: 768 },
        { h: 9, w: 4, c: 768 },
      ],
    });
  });
});

describe('training on elongated images', () => {
  let tmp: ReturnType<typeof tempDir>;
  const tall: { id: string; path: string }[] = [];
  const tallDefects: { id: string; path: string; cls: string }[] = [];
  const settings = {
    seed: 2,
    steps: 3,
    batchNormals: 4,
    batchAnomalies: 2,
    residualReduce: 4,
    residualWidth: 4,
    normalityWidth: 8,
    patchcoreHead: true,
  };

  beforeAll(async () => {
    tmp = tempDir('swan-geometry-');
    for (let k = 0; k < 9; k++) {
      const f = join(tmp.dir, `t${k}.png`);
      await makePng(f, { seed: k + 1, width: 40, height: 100, brightness: k < 7 ? 100 : 200 });
      if (k < 7) tall.push({ id: `g${k}`, path: f });
      else tallDefects.push({ id: `d${k}`, path: f, cls: 'crack' });
    }
  });
  afterAll(() => tmp.cleanup());

  it('a tall project gets a tall input, tall maps and tall heatmaps, and its model reopens so', async () => {
    expect(
      await shapeForImages(
        64,
        tall.map((x) => x.path),
      ),
    ).toEqual({ height: 160, width: 64 });
    const cacheDir = join(tmp.dir, 'cache');
    const out = join(tmp.dir, 'tall-model');
    const r = await trainModel({
      normals: tall,
      anomalies: tallDefects,
      outDir: out,
      inputSize: 64,
      settings,
      cacheDir,
      workers: 0,
    });
    expect(r.manifest.backbone.inputShape).toEqual({ height: 160, width: 64 });
    // MobileNet's stride 32: 160x64 -> 5x2, the 80x32 level -> 3x1.
    expect(r.manifest.reference.shapes.map(({ h, w }) => [h, w])).toEqual([
      [5, 2],
      [3, 1],
    ]);
    const saved = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    expect(saved.backbone.inputShape).toEqual({ height: 160, width: 64 });

    const scorer = await openScorer(out, { cacheDir, workers: 0 });
    const [s] = await scorer.score([tallDefects[0]!.path]);
    await scorer.close();
    if (!s?.ok) throw new Error('scoring failed');
    expect([s.score.heatmap.h, s.score.heatmap.w]).toEqual([5, 2]);
    expect(Number.isFinite(s.score.perHead.patchcore)).toBe(true);
    // The app draws the map over the image at the image's own size: row k of the map covers
    // the k-th fifth of the image, as the backbone saw it.
    const png = await sharp(await heatmapPng(s.score.heatmap, 1, 40, 100)).metadata();
    expect([png.width, png.height]).toEqual([40, 100]);
  }, 300_000);

  it('square images, and a forced square, train as before (no shape in the manifest)', async () => {
    const cacheDir = join(tmp.dir, 'cache');
    const square: { id: string; path: string }[] = [];
    for (let k = 0; k < 6; k++) {
      const f = join(tmp.dir, `s${k}.png`);
      await makePng(f, { seed: k + 11, width: 48, height: 56 });
      square.push({ id: `s${k}`, path: f });
    }
    const plain = { ...settings, patchcoreHead: false };
    const a = await trainModel({
      normals: square,
      anomalies: tallDefects,
      outDir: join(tmp.dir, 'sq'),
      inputSize: 64,
      settings: plain,
      cacheDir,
      workers: 0,
    });
    expect(a.manifest.backbone.inputShape).toBeUndefined();
    expect(a.manifest.reference.shapes[0]).toMatchObject({ h: 2, w: 2 });
    const b = await trainModel({
      normals: tall,
      anomalies: tallDefects,
      outDir: join(tmp.dir, 'forced'),
      inputSize: 64,
      inputShape: null,
      settings: plain,
      cacheDir,
      workers: 0,
    });
    expect(b.manifest.backbone.inputShape).toBeUndefined();
    expect(b.manifest.reference.shapes[0]).toMatchObject({ h: 2, w: 2 });
    const json = JSON.parse(await readFile(join(tmp.dir, 'forced', 'manifest.json'), 'utf8'));
    expect('inputShape' in json.backbone).toBe(false);
  }, 300_000);
});
