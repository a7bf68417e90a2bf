/**
 * The app's deferred cross-validation (trainModel validation 'later' + validateModel) ends
 * with the model the inline path saves: same choice of the supervised heads' weight, same
 * out-of-fold scores, same scores; until then the model scores with the provisional weight.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openScorer, openSession, trainModel } from '../../../src-main/engine/engine';
import type { FeatureSession } from '../../../src-main/engine/feature-session';
import { PROVISIONAL_RULE } from '../../../src-main/engine/provisional';
import { validateModel } from '../../../src-main/engine/validate-model';
import { loadModel } from '../../../src-main/engine/model-file';
import { makePng, tempDir } from '../app/helpers';

describe('deferred cross-validation', () => {
  let tmp: ReturnType<typeof tempDir>;
  let session: FeatureSession;
  const normals: { id: string; path: string }[] = [];
  const anomalies: { id: string; path: string; cls: string }[] = [];
  const settings = {
    seed: 3,
    steps: 4,
    batchNormals: 4,
    batchAnomalies: 2,
    residualReduce: 4,
    residualWidth: 4,
    normalityWidth: 8,
  };
  const manifestOf = async (dir: string) =>
    JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as {
      combination?: { rule: string; supervisedWeight: number };
      validation?: { outOfFold: Record<string, { total: number; z: number }> };
      metrics: Record<string, number>;
    };
  const totals = async (dir: string) => {
    const scorer = await openScorer(dir, { session });
    const r = await scorer.score([...normals, ...anomalies].map((x) => x.path));
    await scorer.close();
    return r.map((x) => (x.ok ? x.score : null));
  };

  beforeAll(async () => {
    tmp = tempDir('swan-validate-model-');
    for (let k = 0; k < 11; k++) {
      const f = join(tmp.dir, `i${k}.png`);
      await makePng(f, { seed: k + 1, size: 48, brightness: k < 8 ? 100 : 200 });
      if (k < 8) normals.push({ id: `g${k}`, path: f });
      else anomalies.push({ id: `d${k}`, path: f, cls: 'burn' });
    }
    session = await openSession({ cacheDir: join(tmp.dir, 'cache'), workers: 0 });
  }, 120_000);
  afterAll(async () => {
    await session?.close();
    tmp.cleanup();
  });

  it('scores with the provisional weight first, then saves what the inline path saves', async () => {
    const common = { normals, anomalies, settings, validateFolds: 3, session };
    const inline = await trainModel({ ...common, outDir: join(tmp.dir, 'inline') });
    const later = await trainModel({ ...common, outDir: join(tmp.dir, 'later'), validation: 'later' });
    expect(later.validationPending).toEqual({ folds: 3 });
    expect(later.validation).toBeUndefined();
    const provisional = await manifestOf(later.modelDir);
    // No previous model: the unsupervised heads alone until the validation chooses.
    expect(provisional.combination).toMatchObject({ rule: PROVISIONAL_RULE, supervisedWeight: 0 });
    expect(provisional.validation).toBeUndefined();
    const before = await totals(later.modelDir);
    for (const s of before) {
      expect(s!.perHead.seen).toBe(0);
      expect(s!.perHead.knn).not.toBe(0);
    }

    const v = await validateModel({ modelDir: later.modelDir, normals, anomalies, folds: 3, session });
    const a = await manifestOf(inline.modelDir);
    const b = await manifestOf(later.modelDir);
    expect(b.combination).toEqual(a.combination);
    expect(b.combination!.rule).not.toBe(PROVISIONAL_RULE);
    expect(b.validation).toEqual(a.validation);
    expect(b.metrics).toEqual(a.metrics);
    expect(v.validation.combination).toEqual(inline.validation!.combination);
    expect(await totals(later.modelDir)).toEqual(await totals(inline.modelDir));

    // The next retrain scores with the weight this one chose, until its own validation is in.
    const next = await trainModel({
      ...common,
      outDir: join(tmp.dir, 'next'),
      validation: 'later',
      provisionalFrom: later.modelDir,
    });
    expect((await manifestOf(next.modelDir)).combination).toMatchObject({
      rule: PROVISIONAL_RULE,
      supervisedWeight: a.combination!.supervisedWeight,
    });

    // Other images than the model trained on: refused, the model left as it was.
    const saved = await readFile(join(next.modelDir, 'manifest.json'), 'utf8');
    await expect(
      validateModel({ modelDir: next.modelDir, normals: normals.slice(1), anomalies, folds: 3, session }),
    ).rejects.toThrow(/not the images the model trained on/);
    expect(await readFile(join(next.modelDir, 'manifest.json'), 'utf8')).toBe(saved);
  }, 300_000);

  it('with the PatchCore head: the backbone tap is asked for, recorded, and read again by the scorer and the validation', async () => {
    const pc = { ...settings, patchcoreHead: true };
    // The warm session has no tap: the training opens one that has.
    expect(session.spec.tapLayers).toBeUndefined();
    const inline = await trainModel({
      normals,
      anomalies,
      settings: pc,
      validateFolds: 3,
      session,
      outDir: join(tmp.dir, 'pc'),
    });
    expect(inline.manifest.backbone.tapLayers).toEqual(['conv_pw_11_relu']);
    const scores = await totals(inline.modelDir);
    // The cross-validation chose the supervised weight; the head counts as set (select.ts), so
    // every image is scored with it.
    const combination = (await manifestOf(inline.modelDir)).combination as {
      patchcoreScale?: number;
      supervisedWeight: number;
    };
    expect(combination.supervisedWeight).toBeTypeOf('number');
    expect(combination.patchcoreScale).toBeUndefined();
    for (const s of scores) expect(s!.perHead.patchcore).toBeTypeOf('number');
    const { state } = await loadModel(inline.modelDir);
    expect(state.patchcore?.taps).toEqual(['conv_pw_11_relu']);
    const later = await trainModel({
      normals,
      anomalies,
      settings: pc,
      validateFolds: 3,
      session,
      validation: 'later',
      outDir: join(tmp.dir, 'pc-later'),
    });
    await validateModel({ modelDir: later.modelDir, normals, anomalies, folds: 3, session });
    expect((await manifestOf(later.modelDir)).combination).toEqual(
      (await manifestOf(inline.modelDir)).combination,
    );
    expect(await totals(later.modelDir)).toEqual(scores);
  }, 300_000);
});
