import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultBackboneSpec } from '../../../src-main/engine/backbone';
import { FeatureSession } from '../../../src-main/engine/feature-session';
import { resolveSettings } from '../../../src-main/engine/settings';
import { EngineError } from '../../../src-main/engine/types';

const haveWeights = existsSync(path.join(defaultBackboneSpec(224).modelDir, 'model.json'));

describe.skipIf(!haveWeights)('outlier exposure: pseudo anomalies from another data set', () => {
  let dir: string;
  let outliers: string;
  let session: FeatureSession;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'swan-outliers-'));
    outliers = path.join(dir, 'other-set');
    await mkdir(path.join(outliers, 'nested'), { recursive: true });
    const colours = [
      { r: 250, g: 0, b: 0 },
      { r: 0, g: 250, b: 0 },
      { r: 0, g: 0, b: 250 },
    ];
    for (const [i, background] of colours.entries()) {
      const where = i === 2 ? path.join(outliers, 'nested') : outliers;
      await sharp({ create: { width: 48, height: 40, channels: 3, background } })
        .png()
        .toFile(path.join(where, `o${i}.png`));
    }
    await writeFile(path.join(outliers, 'broken.png'), 'not a png');
    await writeFile(path.join(outliers, 'notes.txt'), 'ignored');
    await mkdir(path.join(dir, 'empty'));
    session = await FeatureSession.open({ cacheDir: path.join(dir, 'cache'), workers: 0, backend: 'wasm' });
  });
  afterAll(async () => {
    await session?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('deals the readable images of the folder (sub-folders too) out to the normals, seeded', async () => {
    const a = await session.outlierPool(outliers, 5, 2, 7);
    expect(a.pool).toHaveLength(5);
    expect(a.pool.every((p) => p.length === 2)).toBe(true);
    // Three distinct images, each used: 10 slots dealt round-robin over a shuffled order.
    const distinct = new Set(a.pool.flat());
    expect(distinct.size).toBe(3);
    expect(a.warnings).toHaveLength(1);
    expect(a.warnings[0]).toContain('broken.png');
    const b = await session.outlierPool(outliers, 5, 2, 7);
    const index = (pool: typeof a.pool) => pool.flat().map((f) => [...distinct].indexOf(f));
    const firstOrder = index(a.pool);
    // Same seed, same deal (features come from the cache as new objects: compare by content).
    expect(b.pool.flat().map((f) => f.levels[0].data[0])).toEqual(
      a.pool.flat().map((f) => f.levels[0].data[0]),
    );
    expect(firstOrder.slice(0, 3).sort()).toEqual([0, 1, 2]);
  });

  it('settings.pseudo picks the pool, and refuses outliers without a folder or without an image', async () => {
    const viaSettings = await session.pseudoFor(
      resolveSettings({ pseudo: 'outlier', outlierDir: outliers, pseudoPoolPerImage: 3 }),
      [
        { path: 'n0', hash: 'h0' },
        { path: 'n1', hash: 'h1' },
      ],
    );
    expect(viaSettings.pool.map((p) => p.length)).toEqual([3, 3]);
    await expect(
      session.pseudoFor(resolveSettings({ pseudo: 'outlier' }), [{ path: 'n0', hash: 'h0' }]),
    ).rejects.toThrow(/outlierDir|--outliers/);
    const empty = await session.outlierPool(path.join(dir, 'empty'), 2, 1, 0).catch((e: unknown) => e);
    expect(empty).toBeInstanceOf(EngineError);
    expect((empty as Error).message).toMatch(/no readable image in .*empty/);
    await expect(session.outlierPool(path.join(dir, 'missing'), 2, 1, 0)).rejects.toThrow(
      /cannot read the folder/,
    );
  });
});
