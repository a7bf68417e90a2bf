/**
 * The app with the real engine (MobileNet backbone, wasm) in its worker: a tiny project
 * trains, scores and ranks; cancel during real work stops within a second.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { EventPayload } from '../../../src-main/api/contract';
import { AUTO_FALSE_ALARMS } from '../../../src-main/api/threshold-rule';
import { labelledProject, waitFor } from './helpers';

describe('app with the real engine', () => {
  // Ten plain textured images and two much brighter ones (one labelled defect).
  const setup = labelledProject({
    name: 'Real engine',
    count: 12,
    image: (k) => ({ size: 64, brightness: k < 10 ? 100 : 220 }),
    good: 8,
    defect: 10,
    className: 'burn',
  });
  const { api, events } = setup;

  it('trains in the worker, saves and activates the model, scores every image with per-head scores and heatmaps', async () => {
    const { runId } = await api.invoke('training.start', { settings: { steps: 10 } });
    await waitFor(() => events.some((e) => e.event === 'scoring.finished'), 'training and scoring', 240_000);
    const fin = events.find((e) => e.event === 'training.finished')
      ?.payload as EventPayload<'training.finished'>;
    expect(fin).toMatchObject({ runId, status: 'done', version: 1 });
    const stages = new Set(
      events
        .filter((e) => e.event === 'training.progress')
        .map((e) => (e.payload as EventPayload<'training.progress'>).stage),
    );
    expect(stages.has('train')).toBe(true);
    // The queue is scored before the cross-validation: the model has no held-out metrics yet,
    // and its rates are in-sample.
    expect(stages.has('validate')).toBe(false);
    const first = (await api.invoke('models.active', {})).model!;
    expect(first.metrics).toBeNull();
    expect(first.validation).toMatchObject({ folds: 3, error: null });
    expect(['pending', 'running']).toContain(first.validation!.status);
    expect((await api.invoke('threshold.get', {})).rates?.goodBasis).toBe('in-sample');
    // The app cross-validates every retrain (3 folds by default) in the background, then
    // re-scores the queue with the weight it chose.
    await waitFor(() => events.some((e) => e.event === 'validation.finished'), 'validation', 240_000);
    expect(events.find((e) => e.event === 'validation.finished')!.payload).toEqual({
      modelId: first.id,
      status: 'done',
      error: null,
    });
    await waitFor(
      () => events.filter((e) => e.event === 'scoring.finished').length === 2,
      're-scoring',
      120_000,
    );
    // The model records the settings the engine really used, defaults included.
    const model = (await api.invoke('models.active', {})).model!;
    expect(model.validation).toEqual({ status: 'done', folds: 3, error: null });
    expect(model.settings).toMatchObject({
      steps: 10,
      seed: expect.any(Number),
      backbone: expect.any(String),
      inputSize: 224,
    });
    expect(model.metrics).toMatchObject({
      method: 'k-fold cross-validation',
      folds: 3,
      n_good: 8,
      n_defect: 1,
      auc_roc: expect.any(Number),
      ap: expect.any(Number),
    });
    const oof = model.metrics!.out_of_fold as Record<string, { label: string; total: number }>;
    expect(
      Object.keys(oof)
        .map(Number)
        .sort((a, b) => a - b),
    ).toEqual([...setup.ids.slice(0, 8), setup.ids[10]]);
    expect(oof[String(setup.ids[10])].label).toBe('defect');
    // Every good image was trained on: false alarms are measured on their out-of-fold scores.
    const th = await api.invoke('threshold.get', {});
    expect(th.rates?.goodBasis).toBe('out-of-fold');
    // Each out-of-fold score carries its z against its fold model's training normals.
    expect(Object.values(oof).every((s) => typeof (s as { z?: unknown }).z === 'number')).toBe(true);
    // The automatic first threshold: at most AUTO_FALSE_ALARMS of the 8 good images'
    // carried-over out-of-fold evidence above it (none of 8 at 5 %), not the optimistic in-sample scores.
    expect(th.rates).toMatchObject({
      goodBasis: 'out-of-fold',
      goodCount: 8,
      falseAlarms: Math.floor(AUTO_FALSE_ALARMS * 8),
    });
    expect(th.source).toEqual({ kind: 'auto' });
    const project = (await api.invoke('project.current', {}))!;
    expect(existsSync(join(project.path, 'models', `run-${runId}`, 'manifest.json'))).toBe(true);

    const ranked = await api.invoke('images.list', { sort: 'score_desc' });
    expect(ranked.items.every((i) => typeof i.score === 'number')).toBe(true);
    // The two bright images (the labelled defect and its unlabelled twin) rank first.
    expect(
      ranked.items
        .slice(0, 2)
        .map((i) => i.id)
        .sort(),
    ).toEqual([setup.ids[10], setup.ids[11]]);
    const d = await api.invoke('images.get', { id: setup.ids[11] });
    expect(Object.keys(d.scoreDetail!.perHead)).toEqual(
      expect.arrayContaining(['seen', 'pseudo', 'residual', 'normality']),
    );
    expect(d.scoreDetail!.heatmap!.data.length).toBe(d.scoreDetail!.heatmap!.h * d.scoreDetail!.heatmap!.w);
  });

  it('cancel during real training stops within a second and keeps the model', async () => {
    const before = (await api.invoke('models.active', {})).model!;
    const { runId } = await api.invoke('training.start', { settings: { steps: 5000, seed: 1 } });
    await waitFor(
      () => events.some((e) => e.event === 'training.progress' && e.payload.runId === runId),
      'progress',
      120_000,
    );
    const t0 = Date.now();
    await api.invoke('training.cancel', {});
    await waitFor(
      () => events.some((e) => e.event === 'training.finished' && e.payload.runId === runId),
      'cancel',
      5000,
    );
    const ms = Date.now() - t0;
    console.info(`real-engine cancel took ${ms} ms`);
    expect(ms).toBeLessThan(1000);
    expect((await api.invoke('models.active', {})).model?.id).toBe(before.id);
    expect((await api.invoke('training.runs', {})).runs[0]).toMatchObject({ id: runId, status: 'cancelled' });
  });
});
