import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiService } from '../../../src-main/api/service';
import {
  shiftWarning,
  thresholdForCatch,
  thresholdForFalseAlarms,
  type Evidence,
} from '../../../src-main/api/threshold';
import { tempDir } from '../app/helpers';
import { buildProject, type SyntheticImage } from './helpers';

describe('threshold from a target (pure rules)', () => {
  it('false-alarm target: the smallest good score with at most floor(rate * n) good scores above it', () => {
    const good = [0.5, 0.1, 0.4, 0.3, 0.2];
    expect(thresholdForFalseAlarms(good, 0.2)).toBe(0.4); // only 0.5 above: 1 of 5
    expect(thresholdForFalseAlarms(good, 0)).toBe(0.5); // none above
    expect(thresholdForFalseAlarms(good, 0.5)).toBe(0.3); // 0.4, 0.5 above: 2 of 5 (2.5 allowed)
    expect(thresholdForFalseAlarms([], 0.1)).toBeNull();
  });

  it('catch target: just below the k-th highest defect score, at an actual score', () => {
    const defects = [0.9, 0.7, 0.6, 0.3];
    const all = [0.1, 0.2, 0.3, 0.6, 0.65, 0.7, 0.9];
    expect(thresholdForCatch(defects, 0.5, all)).toBe(0.65); // 0.9, 0.7 above: 2 of 4
    expect(thresholdForCatch(defects, 0.75, all)).toBe(0.3); // 0.9, 0.7, 0.6 above
    expect(thresholdForCatch(defects, 1, all)).toBe(0.2); // all four above
    expect(thresholdForCatch(defects, 0.01, all)).toBe(0.7); // at least one
    // The lowest score is a defect: the threshold goes just under it.
    const t = thresholdForCatch([0.1], 1, [0.1, 0.5])!;
    expect(t).toBeLessThan(0.1);
    expect(t).toBeGreaterThan(0.0999);
    expect(thresholdForCatch([], 0.9, all)).toBeNull();
  });
});

describe('the unlabelled images unlike the labelled good ones', () => {
  const good: Evidence[] = Array.from({ length: 10 }, (_, i) => ({
    imageId: i + 1,
    label: 'good',
    score: i,
    basis: 'out-of-fold',
  }));
  it('warns when 90 % of the unlabelled images score above the median good evidence, not otherwise', () => {
    const high = Array.from({ length: 30 }, (_, i) => 5 + i);
    expect(shiftWarning(good, high)).toMatch(/may not represent these images/);
    const mixed = Array.from({ length: 30 }, (_, i) => i - 5);
    expect(shiftWarning(good, mixed)).toBeNull();
    // Too little to judge: no warning.
    expect(shiftWarning(good.slice(0, 4), high)).toBeNull();
    expect(shiftWarning(good, high.slice(0, 10))).toBeNull();
  });
});

describe('threshold.set / threshold.get with targets', () => {
  let tmp: ReturnType<typeof tempDir>;
  let api: ApiService;
  beforeEach(() => {
    tmp = tempDir('swan-threshold-');
    api = new ApiService({ projectsRoot: join(tmp.dir, 'projects') });
  });
  afterEach(async () => {
    await api.close();
    tmp.cleanup();
  });

  // The model trained on the first three images (buildProject's labelIds).
  const images: SyntheticImage[] = [
    { name: 'g-train-1.png', batch: 'b', label: 'good', total: 0.9 },
    { name: 'g-train-2.png', batch: 'b', label: 'good', total: 0.8 },
    { name: 'd-train.png', batch: 'b', label: 'defect', total: 0.95 },
    { name: 'g-held-1.png', batch: 'b', label: 'good', total: 0.3 },
    { name: 'g-held-2.png', batch: 'b', label: 'good', total: 0.5 },
    { name: 'd-held.png', batch: 'b', label: 'defect', total: 0.7 },
    { name: 'u.png', batch: 'b', total: 0.6 },
  ];

  async function open(list: SyntheticImage[]) {
    const b = await buildProject(tmp.dir, list, { threshold: null });
    b.store.close();
    await api.invoke('project.open', { path: join(tmp.dir, 'project') });
  }

  it('a false-alarm target uses held-out good images and reports both rates', async () => {
    await open(images);
    const r = await api.invoke('threshold.set', { falseAlarmRate: 0 });
    expect(r.threshold).toBe(0.5);
    expect(r.flagged).toBe(5); // 0.9, 0.8, 0.95, 0.7, 0.6
    expect(r.source).toEqual({ kind: 'falseAlarmRate', target: 0 });
    // Both rates on the images the model did not train on: g-held-1/2 and d-held.
    expect(r.rates).toEqual({
      falseAlarmRate: 0,
      catchRate: 1,
      falseAlarmInterval: [0, expect.closeTo(0.658, 3)],
      catchInterval: [expect.closeTo(0.207, 3), 1],
      goodCount: 2,
      defectCount: 1,
      falseAlarms: 0,
      caught: 1,
      goodBasis: 'held-out',
      defectBasis: 'held-out',
      thinEvidence: 'only 2 good images and 1 defects behind these rates: the intervals are wide',
      defectsPicked: 0,
    });
    // The score scale: 0 at the mean of the held-out good scores (0.3, 0.5), unit their spread.
    expect(r.scale).toEqual({ offset: 0.4, unit: expect.closeTo(0.1414, 4), basis: 'held-out', goodCount: 2 });
    // The queue: the one unlabelled image (0.6) is flagged.
    expect(r.queue).toEqual({ unlabelled: 1, flagged: 1 });
    expect(await api.invoke('threshold.get', {})).toEqual({
      threshold: 0.5,
      source: r.source,
      rates: r.rates,
      scale: r.scale,
      queue: r.queue,
      warnings: [],
    });
  });

  it('a false-alarm target uses the out-of-fold scores of the training images when the model has them (raw, without z)', async () => {
    const b = await buildProject(tmp.dir, images, { threshold: null });
    // As a cross-validated retrain records them: each training image scored by a fold model without it.
    const [g1, g2, d] = b.ids;
    const metrics = {
      auc_roc: 0.9,
      folds: 2,
      method: 'k-fold cross-validation',
      out_of_fold: {
        [g1]: { label: 'good', total: 0.2 },
        [g2]: { label: 'good', total: 0.6 },
        [d]: { label: 'defect', total: 0.4 },
      },
    };
    b.store.db.prepare('UPDATE models SET metrics = ? WHERE id = ?').run(JSON.stringify(metrics), b.modelId);
    b.store.close();
    await api.invoke('project.open', { path: join(tmp.dir, 'project') });
    // Good pool: held-out 0.3, 0.5 (model scores) and out-of-fold 0.2, 0.6 (not the in-sample 0.9, 0.8).
    const r = await api.invoke('threshold.set', { falseAlarmRate: 0.25 });
    expect(r.threshold).toBe(0.5);
    // Defects: d-held (0.7) by its own score, d (trained) by its out-of-fold 0.4: below 0.5.
    expect(r.rates).toMatchObject({
      falseAlarmRate: 0.25,
      catchRate: 0.5,
      goodCount: 4,
      defectCount: 2,
      falseAlarms: 1,
      caught: 1,
      goodBasis: 'out-of-fold',
      defectBasis: 'out-of-fold',
    });
    const zero = await api.invoke('threshold.set', { falseAlarmRate: 0 });
    expect(zero.threshold).toBe(0.6);
    expect(zero.rates).toMatchObject({ falseAlarms: 0, goodCount: 4, goodBasis: 'out-of-fold' });
  });

  it('a catch target sets the highest threshold that catches enough known defects', async () => {
    await open(images);
    const r = await api.invoke('threshold.set', { catchRate: 1 });
    // The held-out defect (0.7) counts, not the trained one: just below it.
    expect(r.threshold).toBe(0.6);
    expect(r.flagged).toBe(4);
    expect(r.rates).toMatchObject({ catchRate: 1, caught: 1, falseAlarmRate: 0, goodBasis: 'held-out' });
    // A value by hand: the source says so, the rates follow.
    const v = await api.invoke('threshold.set', { threshold: 0.4 });
    expect(v.source).toEqual({ kind: 'value' });
    expect(v.rates).toMatchObject({ falseAlarms: 1, falseAlarmRate: 0.5, caught: 1 });
  });

  it('without held-out good images every good image counts; missing labels give clear errors', async () => {
    await open(images.slice(0, 3).concat([{ name: 'u2.png', batch: 'b', total: 0.1 }]));
    const r = await api.invoke('threshold.set', { falseAlarmRate: 0.5 });
    expect(r.rates.goodBasis).toBe('in-sample');
    expect(r.threshold).toBe(0.8);
    expect(r.rates).toMatchObject({ goodCount: 2, falseAlarms: 1, falseAlarmRate: 0.5 });
    await api.invoke('labels.set', { ids: [3], label: 'unlabelled' });
    const c = await api.call('threshold.set', { catchRate: 0.9 });
    expect(c).toMatchObject({
      ok: false,
      error: { code: 'invalid_input', message: expect.stringMatching(/no scored image is labelled defect/) },
    });
  });

  it('validates: exactly one of value, false-alarm target, catch target', async () => {
    await open(images);
    for (const payload of [{}, { threshold: 1, catchRate: 0.5 }, { falseAlarmRate: 0.1, catchRate: 0.5 }]) {
      const r = await api.call('threshold.set', payload);
      expect(r).toMatchObject({
        ok: false,
        error: {
          code: 'invalid_input',
          message: expect.stringMatching(/give either threshold or falseAlarmRate or catchRate/),
        },
      });
    }
    expect(await api.call('threshold.set', { catchRate: 0 })).toMatchObject({
      ok: false,
      error: { message: expect.stringMatching(/catchRate must be between 0.01 and 1/) },
    });
    // Before any threshold: no source, no rates.
    expect(await api.invoke('threshold.get', {})).toMatchObject({
      threshold: null,
      source: null,
      rates: null,
      queue: { unlabelled: 1, flagged: 0 },
    });
  });
});
