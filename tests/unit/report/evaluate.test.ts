import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiService } from '../../../src-main/api/service';
import { tempDir } from '../app/helpers';
import { buildProject, type SyntheticImage } from './helpers';

const h = (total: number, normality: number) => ({
  seen: total,
  pseudo: total / 2,
  residual: 1 - total,
  normality,
});

// Defects 0.9 and 0.6, goods 0.8, 0.3, 0.2: by hand, AUC-ROC = 5/6 (the 0.6 defect loses to
// the 0.8 good only) and AP = 0.5 * 1 + 0.5 * 2/3 = 5/6.
const images: SyntheticImage[] = [
  { name: 'd1.png', batch: 'test', label: 'defect', total: 0.9, perHead: h(0.9, 0.1) },
  { name: 'g1.png', batch: 'test', label: 'good', total: 0.8, perHead: h(0.8, 0.9) },
  { name: 'd2.png', batch: 'test', label: 'defect', total: 0.6, perHead: h(0.6, 0.2) },
  { name: 'g2.png', batch: 'test', label: 'good', total: 0.3, perHead: h(0.3, 0.8) },
  { name: 'g3.png', batch: 'test', label: 'good', total: 0.2, perHead: h(0.2, 0.7) },
  { name: 'u.png', batch: 'test', total: 0.99 },
  { name: 'g-unscored.png', batch: 'test', label: 'good', total: null },
  { name: 'other.png', batch: 'train', label: 'defect', total: 0.1 },
];

describe('evaluate.run', () => {
  let tmp: ReturnType<typeof tempDir>;
  let api: ApiService;
  beforeEach(() => {
    tmp = tempDir('swan-eval-');
    api = new ApiService({ projectsRoot: join(tmp.dir, 'projects') });
  });
  afterEach(async () => {
    await api.close();
    tmp.cleanup();
  });

  it('matches hand-computed curves, areas, per-head numbers and confusion counts; compares two versions', async () => {
    const { store, ids, modelId } = await buildProject(tmp.dir, images, { threshold: 0.5 });
    // Trained on other images: every labelled image here is held out, counted by its own score.
    store.db.prepare("UPDATE models SET label_ids = '[]' WHERE id = ?").run(modelId);
    // A second version that ranks perfectly on the test batch, with no threshold yet.
    const v2 = store.addModel(
      {
        dir: 'models/run-1',
        settings: {},
        labelGood: 3,
        labelDefect: 2,
        labelIds: [],
        metrics: null,
        warnings: [],
        runId: null,
      },
      false,
    );
    const perfect = [1, 0.4, 0.9, 0.3, 0.2];
    store.saveScores(
      v2.id,
      perfect.map((total, k) => ({ imageId: ids[k], total, perHead: { seen: total }, heatmap: null })),
    );
    store.close();
    await api.invoke('project.open', { path: join(tmp.dir, 'project') });

    const r = await api.invoke('evaluate.run', { batch: 'test', modelIds: [modelId!, v2.id] });
    expect(r.batch).toBe('test');
    const [a, b] = r.models;
    expect(a).toMatchObject({
      modelId,
      version: 1,
      good: 3,
      defect: 2,
      unscored: 1,
      note: null,
      basis: 'labelled images: 5 not trained on (their own scores)',
      counted: { good: 3, defect: 2 },
    });
    expect(a.total!.aucRoc).toBeCloseTo(5 / 6, 12);
    expect(a.total!.averagePrecision).toBeCloseTo(5 / 6, 12);
    // Finite thresholds only (no +Infinity start point), one point per distinct score.
    expect(a.total!.roc).toEqual([
      { x: 0, y: 0.5, threshold: 0.9 },
      { x: 1 / 3, y: 0.5, threshold: 0.8 },
      { x: 1 / 3, y: 1, threshold: 0.6 },
      { x: 2 / 3, y: 1, threshold: 0.3 },
      { x: 1, y: 1, threshold: 0.2 },
    ]);
    expect(a.total!.pr.map((p) => [p.x, p.y])).toEqual([
      [0.5, 1],
      [0.5, 0.5],
      [1, 2 / 3],
      [1, 0.5],
      [1, 0.4],
    ]);
    expect(JSON.stringify(r)).not.toMatch(/Infinity|null,"threshold"/);
    // Each head alone: seen equals the total here; residual (1 - total) is reversed: 1/6.
    expect(Object.keys(a.heads).sort()).toEqual(['normality', 'pseudo', 'residual', 'seen']);
    expect(a.heads.seen.aucRoc).toBeCloseTo(5 / 6, 12);
    expect(a.heads.residual.aucRoc).toBeCloseTo(1 / 6, 12);
    // The normality head separates perfectly once negated (low normality = anomalous).
    expect(a.heads.normality.aucRoc).toBe(1);
    expect(a.heads.normality.averagePrecision).toBe(1);
    // At threshold 0.5: both defects flagged, one good flagged (0.8).
    expect(a.confusion).toEqual({ threshold: 0.5, tp: 2, fp: 1, tn: 2, fn: 0 });

    expect(b).toMatchObject({ modelId: v2.id, version: 2, good: 3, defect: 2 });
    expect(b.total!.aucRoc).toBe(1);
    expect(b.total!.averagePrecision).toBe(1);
    expect(b.confusion).toEqual({ threshold: null, tp: 0, fp: 0, tn: 0, fn: 0 });

    // Default: the active model on every image (the 'train' batch adds a defect at 0.1).
    const all = await api.invoke('evaluate.run', {});
    expect(all.models).toHaveLength(1);
    expect(all.models[0]).toMatchObject({ modelId, defect: 3, good: 3 });
    // 0.1 is below every good: 5 of 9 pairs won -> (5 + 0) / 9.
    expect(all.models[0].total!.aucRoc).toBeCloseTo(5 / 9, 12);
  });

  it('says why there are no curves when one kind of label is missing; refuses unknown models', async () => {
    const { store } = await buildProject(
      tmp.dir,
      images.filter((i) => i.label !== 'defect'),
      { threshold: 0.5 },
    );
    store.close();
    await api.invoke('project.open', { path: join(tmp.dir, 'project') });
    const r = await api.invoke('evaluate.run', {});
    expect(r.models[0].total).toBeNull();
    expect(r.models[0].note).toMatch(/both kinds of labels .*good: 3, defect: 0/);
    expect(r.models[0].confusion).toMatchObject({ fp: 1, tn: 2 });
    expect(await api.call('evaluate.run', { modelIds: [99] })).toMatchObject({
      ok: false,
      error: { code: 'not_found' },
    });
    expect(await api.call('evaluate.run', { modelIds: [1, 2, 3] })).toMatchObject({
      ok: false,
      error: { code: 'invalid_input' },
    });
  });
});
