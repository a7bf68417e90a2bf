/**
 * Training and scoring through the real worker thread, with a fast fake engine loaded
 * into it: progress, cancel, crash and restart, and that a model only becomes active
 * once it is completely saved.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AnyEvent, EventPayload } from '../../../src-main/api/contract';
import { ApiService } from '../../../src-main/api/service';
import { FAKE_ENGINE, importPngs, makePng, tempDir, waitFor } from './helpers';

describe('engine worker through the API', () => {
  let tmp: ReturnType<typeof tempDir>;
  let api: ApiService;
  let events: AnyEvent[];
  let ids: number[];

  const finished = (runId: number) =>
    events.find((e) => e.event === 'training.finished' && e.payload.runId === runId)?.payload as
      EventPayload<'training.finished'> | undefined;
  const scoringDone = (n: number) => events.filter((e) => e.event === 'scoring.finished').length >= n;

  beforeEach(async () => {
    tmp = tempDir();
    api = new ApiService({ projectsRoot: join(tmp.dir, 'projects'), worker: { engineModule: FAKE_ENGINE } });
    events = [];
    api.on((e) => events.push(e));
    await api.invoke('project.create', { name: 'W' });
    // Six dim good images, two bright defects: the fake engine scores by brightness.
    ids = await importPngs(api, tmp.dir, 8, (k) => ({ brightness: k < 6 ? 60 + k * 5 : 200 }));
    await api.invoke('labels.set', { ids: ids.slice(2, 6), label: 'good' });
    await api.invoke('labels.set', { ids: [ids[6]], label: 'defect', className: 'burn' });
  });
  afterEach(async () => {
    await api.close();
    tmp.cleanup();
  });

  async function trainToEnd(
    settings: Record<string, unknown> = {},
  ): Promise<EventPayload<'training.finished'>> {
    const before = events.filter((e) => e.event === 'scoring.finished').length;
    const { runId } = await api.invoke('training.start', { settings });
    await waitFor(() => finished(runId) !== undefined, 'training to finish');
    const f = finished(runId)!;
    if (f.status === 'done') await waitFor(() => scoringDone(before + 1), 'scoring after training');
    return f;
  }

  it("system.info answers from the worker's engine, also while a job runs", async () => {
    const info = await api.invoke('system.info', {});
    expect(info.backend.tag).toBe('wasm');
    expect(info.fullMode).toMatchObject({ ok: false, message: expect.stringMatching(/native TensorFlow/) });
    const { runId } = await api.invoke('training.start', { settings: { steps: 20 } });
    expect(await api.invoke('system.info', {})).toEqual(info);
    await waitFor(() => finished(runId) !== undefined, 'training to finish');
  });

  it('trains off the main thread with progress events, activates the saved model, scores and ranks', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const f = await trainToEnd({ steps: 6 });
    clearInterval(timer);
    // The main thread kept running timers while the job ran.
    expect(ticks).toBeGreaterThan(5);
    expect(f).toMatchObject({ status: 'done', version: 1, error: null });
    const progress = events
      .filter((e) => e.event === 'training.progress')
      .map((e) => e.payload as EventPayload<'training.progress'>);
    expect(progress.map((p) => p.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(progress[0]).toMatchObject({ stage: 'train', total: 6, losses: { seen: 1, pseudo: 2 } });
    expect(progress[5].etaSeconds).toBe(0);
    // A reloaded UI gets the whole loss history and how the run ended.
    const after = await api.invoke('training.status', {});
    expect(after.losses.seen.map((p) => p.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(after.losses.pseudo[0]).toEqual({ step: 1, value: 2 });
    expect(after.lastFinished).toMatchObject({ status: 'done', version: 1 });

    const models = await api.invoke('models.list', {});
    expect(models.models).toHaveLength(1);
    expect(models.models[0]).toMatchObject({
      version: 1,
      active: true,
      labelCounts: { good: 4, defect: 1 },
      metrics: { aucRoc: 0.5 },
      settings: { steps: 6 },
    });
    const runs = await api.invoke('training.runs', {});
    expect(runs.runs[0]).toMatchObject({ status: 'done', modelId: models.models[0].id });

    // Scoring ran after training: every image has a score, the bright ones rank first.
    const status = await api.invoke('scoring.status', {});
    expect(status.unscored).toBe(0);
    const ranked = await api.invoke('images.list', { sort: 'score_desc' });
    expect(
      ranked.items
        .slice(0, 2)
        .map((i) => i.id)
        .sort(),
    ).toEqual([ids[6], ids[7]]);
    const detail = await api.invoke('images.get', { id: ids[7] });
    expect(detail.scoreDetail).toMatchObject({
      modelVersion: 1,
      perHead: { seen: expect.any(Number) },
      heatmap: { h: 4, w: 4 },
    });
    expect(detail.scoreDetail!.heatmap!.data).toHaveLength(16);
    // A first threshold was set from the good images, and flags the bright defects.
    const t = await api.invoke('threshold.get', {});
    expect(t.threshold).not.toBeNull();
    const flagged = await api.invoke('images.ids', { filter: { aboveThreshold: true } });
    expect(flagged.ids.sort()).toEqual([ids[6], ids[7]]);
    const heat = await api.resolveFile('heatmap', ids[7]);
    expect(heat?.contentType).toBe('image/png');
    expect(heat?.body?.subarray(1, 4).toString()).toBe('PNG');

    // The threshold moves what is flagged.
    const set = await api.invoke('threshold.set', { threshold: 0 });
    expect(set.flagged).toBe(8);
    // A false-alarm target: at most 25 % of the 4 good images above the threshold.
    const target = await api.invoke('threshold.set', { falseAlarmRate: 0.25 });
    expect(target.flagged).toBe(3);
    expect((await api.invoke('images.ids', { filter: { aboveThreshold: true, label: 'good' } })).ids).toEqual(
      [ids[5]],
    );
    expect((await api.invoke('threshold.set', { falseAlarmRate: 0 })).flagged).toBe(2);
    await api.invoke('threshold.set', { threshold: 0 });
    const hist = await api.invoke('threshold.histogram', { bins: 5 });
    expect(hist.bins.reduce((a, b) => a + b.count, 0)).toBe(8);
    expect(hist.threshold).toBe(0);
  });

  it('cancel stops within a second and leaves the previous model active', async () => {
    const first = await trainToEnd({ steps: 2 });
    const { runId } = await api.invoke('training.start', { settings: { steps: 200 } });
    await waitFor(
      () => events.some((e) => e.event === 'training.progress' && e.payload.runId === runId),
      'first progress',
    );
    expect((await api.invoke('training.status', {})).run).toMatchObject({ id: runId, status: 'running' });
    const t0 = Date.now();
    expect(await api.invoke('training.cancel', {})).toEqual({ cancelled: true });
    await waitFor(() => finished(runId) !== undefined, 'cancel');
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(finished(runId)).toMatchObject({ status: 'cancelled', modelId: null });
    const active = await api.invoke('models.active', {});
    expect(active.model?.id).toBe(first.modelId);
    expect((await api.invoke('models.list', {})).models).toHaveLength(1);
    expect((await api.invoke('training.runs', {})).runs[0]).toMatchObject({ id: runId, status: 'cancelled' });
    // The cancelled run left no model folder behind.
    const project = (await api.invoke('project.current', {}))!;
    expect(readdirSync(join(project.path, 'models')).filter((d) => d.startsWith('run-'))).toEqual([
      `run-${first.runId}`,
    ]);
  });

  it('cancel stops within a second even when the engine never looks at the signal', async () => {
    const { runId } = await api.invoke('training.start', { settings: { seed: 777, steps: 50 } });
    // Let the worker get into its blocking loop.
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    await api.invoke('training.cancel', { runId });
    await waitFor(() => finished(runId) !== undefined, 'forced cancel');
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(finished(runId)?.status).toBe('cancelled');
    expect((await api.invoke('models.active', {})).model).toBeNull();
    // The terminated worker was replaced: the next run works.
    const next = await trainToEnd({ steps: 2 });
    expect(next.status).toBe('done');
  });

  it('a crashed worker is reported, the run fails, and a restarted worker runs the next job', async () => {
    const { runId } = await api.invoke('training.start', { settings: { seed: 666 } });
    await waitFor(() => finished(runId) !== undefined, 'crash to be reported');
    expect(finished(runId)).toMatchObject({ status: 'failed', error: expect.stringMatching(/crash/) });
    const crash = events.find((e) => e.event === 'worker.crashed');
    expect(crash?.payload).toMatchObject({
      restarted: true,
      message: expect.stringMatching(/simulated engine crash/),
    });
    expect((await api.invoke('training.runs', {})).runs[0]).toMatchObject({ status: 'failed' });
    const next = await trainToEnd({ steps: 2 });
    expect(next.status).toBe('done');
  });

  it('a worker that dies while scoring is reported; scores saved so far stay; scoring works again', async () => {
    await trainToEnd({ steps: 1 });
    const bad = join(tmp.dir, 'crash-me.png');
    await makePng(bad, { seed: 50 });
    const { importedIds } = await api.invoke('import.run', { source: { kind: 'paths', paths: [bad] } });
    const job = await api.invoke('scoring.start', { scope: 'unscored' });
    await waitFor(
      () => events.some((e) => e.event === 'scoring.finished' && e.payload.jobId === job.jobId),
      'scoring to fail',
    );
    const fin = events.find((e) => e.event === 'scoring.finished' && e.payload.jobId === job.jobId)!
      .payload as EventPayload<'scoring.finished'>;
    expect(fin).toMatchObject({ status: 'failed', error: expect.stringMatching(/exit code 5/) });
    expect(events.some((e) => e.event === 'worker.crashed')).toBe(true);
    // Earlier scores are intact; the bad image is simply unscored.
    expect((await api.invoke('scoring.status', {})).unscored).toBe(1);
    await api.invoke('images.remove', { ids: importedIds });
    const again = await api.invoke('scoring.start', { scope: 'all' });
    await waitFor(
      () => events.some((e) => e.event === 'scoring.finished' && e.payload.jobId === again.jobId),
      'scoring again',
    );
    expect(
      events.find((e) => e.event === 'scoring.finished' && e.payload.jobId === again.jobId)!.payload,
    ).toMatchObject({ status: 'done', scored: 8 });
  });

  it('refuses a second job while one runs (busy), and closing the project cancels it', async () => {
    const { runId } = await api.invoke('training.start', { settings: { steps: 200 } });
    expect(await api.call('training.start', {})).toMatchObject({ ok: false, error: { code: 'busy' } });
    expect(await api.call('scoring.start', {})).toMatchObject({ ok: false, error: { code: 'busy' } });
    const project = (await api.invoke('project.current', {}))!;
    await api.invoke('project.close', {});
    expect(finished(runId)?.status).toBe('cancelled');
    expect(existsSync(join(project.path, 'models', `run-${runId}`))).toBe(false);
  });

  it('a retrain scores first and cross-validates after; a retrain meanwhile supersedes it, and the newest model is validated', async () => {
    const validationOf = async (id: number) =>
      (await api.invoke('models.list', {})).models.find((m) => m.id === id)!.validation;
    await trainToEnd({ seed: 555 });
    const first = (await api.invoke('models.active', {})).model!;
    expect(first.metrics).toMatchObject({ aucRoc: 0.5 });
    await waitFor(async () => (await validationOf(first.id))?.status === 'running', 'validation to start');
    // The engine is busy with the validation, yet a retrain is not refused: it comes first.
    const t0 = Date.now();
    const { runId } = await api.invoke('training.start', { settings: { seed: 555 } });
    await waitFor(() => finished(runId) !== undefined, 'second retrain');
    expect(finished(runId)!.status).toBe('done');
    expect(Date.now() - t0).toBeLessThan(1400);
    expect(events.find((e) => e.event === 'validation.finished')!.payload).toEqual({
      modelId: first.id,
      status: 'cancelled',
      error: null,
    });
    expect(await validationOf(first.id)).toEqual({ status: 'pending', folds: 3, error: null });
    const second = finished(runId)!.modelId!;
    await waitFor(
      () =>
        events.some(
          (e) =>
            e.event === 'validation.finished' && e.payload.modelId === second && e.payload.status === 'done',
        ),
      'validation of the new model',
    );
    const model = (await api.invoke('models.active', {})).model!;
    expect(model.id).toBe(second);
    expect(model.validation).toEqual({ status: 'done', folds: 3, error: null });
    expect(Object.keys(model.metrics!.out_of_fold as object)).toHaveLength(5);
    // Then the queue is scored again (the weight may have changed) and the automatic threshold follows.
    const at = events.findIndex(
      (e) => e.event === 'validation.finished' && e.payload.modelId === second && e.payload.status === 'done',
    );
    await waitFor(
      () => events.slice(at).some((e) => e.event === 'scoring.finished'),
      're-scoring after validation',
    );
    expect((await api.invoke('threshold.get', {})).rates?.goodBasis).toBe('out-of-fold');
    // Only the active model's validation runs; the superseded one waits.
    expect(await validationOf(first.id)).toEqual({ status: 'pending', folds: 3, error: null });
  });

  it('a validation the project closed on resumes when it opens again', async () => {
    await trainToEnd({ seed: 555 });
    const model = (await api.invoke('models.active', {})).model!;
    await waitFor(
      async () => (await api.invoke('models.active', {})).model!.validation?.status === 'running',
      'validation',
    );
    const project = (await api.invoke('project.current', {}))!;
    await api.invoke('project.close', {});
    expect(events.filter((e) => e.event === 'validation.finished').map((e) => e.payload)).toEqual([
      { modelId: model.id, status: 'cancelled', error: null },
    ]);
    await api.invoke('project.open', { path: project.path });
    await waitFor(
      () => events.some((e) => e.event === 'validation.finished' && e.payload.status === 'done'),
      'the resumed validation',
    );
    expect((await api.invoke('models.active', {})).model!.validation).toEqual({
      status: 'done',
      folds: 3,
      error: null,
    });
  });

  it('rescoring unscored images only scores new ones', async () => {
    await trainToEnd({ steps: 1 });
    const f = join(tmp.dir, 'late.png');
    await makePng(f, { seed: 99 });
    await api.invoke('import.run', { source: { kind: 'paths', paths: [f] } });
    expect((await api.invoke('scoring.status', {})).unscored).toBe(1);
    const job = await api.invoke('scoring.start', { scope: 'unscored' });
    expect(job.total).toBe(1);
    await waitFor(() => scoringDone(2), 'rescoring');
    expect((await api.invoke('scoring.status', {})).unscored).toBe(0);
  });
});
