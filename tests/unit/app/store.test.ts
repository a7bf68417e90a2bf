import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppError } from '../../../src-main/api/errors';
import { importCandidates } from '../../../src-main/project/importer';
import { SCHEMA_VERSION } from '../../../src-main/project/schema';
import { DB_FILE, ProjectStore } from '../../../src-main/project/store';
import { makePng, tempDir } from './helpers';

describe('project store', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  async function projectWithImages(
    n: number,
  ): Promise<{ store: ProjectStore; dir: string; ids: number[]; files: string[] }> {
    const dir = join(tmp.dir, 'proj');
    const store = ProjectStore.create(dir, 'Widgets');
    const files: string[] = [];
    for (let k = 0; k < n; k++) {
      const f = join(tmp.dir, `img${k}.png`);
      await makePng(f, { seed: k + 1, brightness: 40 + k * 20 });
      files.push(f);
    }
    const summary = await importCandidates(
      store,
      files.map((path) => ({ path })),
      [],
      { batch: 'b1', applyLabels: false },
    );
    return { store, dir, ids: summary.importedIds, files };
  }

  it('creates the folder layout, WAL, foreign keys and the current schema version', () => {
    const dir = join(tmp.dir, 'p');
    const store = ProjectStore.create(dir, 'P');
    expect(existsSync(join(dir, DB_FILE))).toBe(true);
    for (const sub of ['thumbs', 'models']) expect(existsSync(join(dir, sub))).toBe(true);
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(store.db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(store.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    store.close();
  });

  it('refuses to create a project in a non-empty folder or over another project', () => {
    const dir = join(tmp.dir, 'p');
    ProjectStore.create(dir, 'P').close();
    expect(() => ProjectStore.create(dir, 'Q')).toThrow(/already holds a project/);
    expect(() => ProjectStore.open(join(tmp.dir, 'nope'))).toThrow(/not a Swan Inspector project/);
  });

  it('a project open in one store is refused to a second one with a clear message', () => {
    const dir = join(tmp.dir, 'p');
    const first = ProjectStore.create(dir, 'P');
    expect(() => ProjectStore.open(dir)).toThrow(/open in another Swan Inspector/);
    first.close();
    ProjectStore.open(dir).close();
  });

  it('refuses a database written by a newer schema, without touching it', () => {
    const dir = join(tmp.dir, 'p');
    ProjectStore.create(dir, 'P').close();
    const db = new Database(join(dir, DB_FILE));
    db.pragma(`user_version = ${SCHEMA_VERSION + 5}`);
    db.close();
    expect(() => ProjectStore.open(dir)).toThrow(/newer Swan Inspector/);
    const again = new Database(join(dir, DB_FILE));
    expect(again.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION + 5);
    again.close();
  });

  it('reopening restores images, labels, classes, models, runs, scores and threshold', async () => {
    const { store, dir, ids } = await projectWithImages(4);
    const scratch = store.ensureClass('scratch');
    store.setLabels([ids[0], ids[1]], 'good', null);
    store.setLabels([ids[2]], 'defect', scratch.id);
    const runId = store.startRun({ steps: 10, seed: 3 });
    const model = store.addModel({
      dir: 'models/run-1',
      settings: { steps: 10 },
      labelGood: 2,
      labelDefect: 1,
      labelIds: [ids[0], ids[1], ids[2]],
      metrics: { aucRoc: 0.9 },
      warnings: [],
      runId,
    });
    store.saveScores(model.id, [
      {
        imageId: ids[0],
        total: 0.1,
        perHead: { seen: 0.1 },
        heatmap: { h: 2, w: 2, data: new Float32Array([0, 1, 2, 3]) },
      },
      { imageId: ids[2], total: 0.9, perHead: { seen: 0.7, pseudo: 0.2 }, heatmap: null },
    ]);
    store.setThreshold(0.5);
    store.close();

    const again = ProjectStore.open(dir);
    const info = again.info();
    expect(info).toMatchObject({
      name: 'Widgets',
      imageCount: 4,
      counts: { good: 2, defect: 1, unlabelled: 1 },
      activeModelId: model.id,
      threshold: 0.5,
    });
    expect(again.listClasses()).toEqual([{ id: scratch.id, name: 'scratch', count: 1 }]);
    expect(again.listRuns()[0]).toMatchObject({
      id: runId,
      status: 'done',
      modelId: model.id,
      settings: { steps: 10, seed: 3 },
    });
    expect(again.activeModel()).toMatchObject({
      id: model.id,
      version: 1,
      active: true,
      labelCounts: { good: 2, defect: 1 },
      metrics: { aucRoc: 0.9 },
    });
    const d0 = again.getImage(ids[0]);
    expect(d0.label).toBe('good');
    expect(d0.scoreDetail).toMatchObject({
      total: 0.1,
      perHead: { seen: 0.1 },
      heatmap: { h: 2, w: 2, data: [0, 1, 2, 3] },
    });
    const d2 = again.getImage(ids[2]);
    expect(d2).toMatchObject({ label: 'defect', className: 'scratch', score: 0.9, flagged: true });
    const ranked = again.listImages({ offset: 0, limit: 10, sort: 'score_desc' }).items.map((i) => i.id);
    expect(ranked.slice(0, 2)).toEqual([ids[2], ids[0]]);
    again.close();
  });

  it('a moved or deleted file shows as missing, never crashes, and comes back when restored', async () => {
    const { store, dir, ids, files } = await projectWithImages(3);
    renameSync(files[1], `${files[1]}.moved`);
    rmSync(files[2]);
    const page = store.listImages({ offset: 0, limit: 10, sort: 'imported' });
    expect(page.items.map((i) => i.status)).toEqual(['ok', 'missing', 'missing']);
    expect(store.getImage(ids[2]).status).toBe('missing');
    store.close();

    // On open the whole project is checked, not only a listed page.
    renameSync(`${files[1]}.moved`, files[1]);
    const again = ProjectStore.open(dir);
    expect(again.info().missingCount).toBe(1);
    expect(
      again
        .listImages({ offset: 0, limit: 10, sort: 'imported', filter: { status: 'missing' } })
        .items.map((i) => i.id),
    ).toEqual([ids[2]]);
    // Missing images are not given to training.
    again.setLabels(ids, 'good', null);
    expect(again.trainingSet().normals.map((n) => n.id)).toEqual([ids[0], ids[1]]);
    again.close();
  });

  it('filters by label, class, scored and above threshold; sorts by score', async () => {
    const { store, ids } = await projectWithImages(5);
    const crack = store.ensureClass('crack');
    store.setLabels([ids[0]], 'good', null);
    store.setLabels([ids[1], ids[2]], 'defect', crack.id);
    const m = store.addModel({
      dir: 'models/x',
      settings: {},
      labelGood: 1,
      labelDefect: 2,
      labelIds: [],
      metrics: null,
      warnings: [],
      runId: null,
    });
    store.saveScores(m.id, [
      { imageId: ids[0], total: 0.2, perHead: {}, heatmap: null },
      { imageId: ids[1], total: 0.8, perHead: {}, heatmap: null },
      { imageId: ids[3], total: 0.5, perHead: {}, heatmap: null },
    ]);
    store.setThreshold(0.4);
    const q = (
      filter: Parameters<ProjectStore['imageIds']>[0],
      sort: 'score_desc' | 'imported' = 'imported',
    ) => store.imageIds(filter, sort);
    expect(q({ label: 'unlabelled' })).toEqual([ids[3], ids[4]]);
    expect(q({ label: 'defect', classId: crack.id })).toEqual([ids[1], ids[2]]);
    expect(q({ scored: false })).toEqual([ids[2], ids[4]]);
    expect(q({ aboveThreshold: true }, 'score_desc')).toEqual([ids[1], ids[3]]);
    expect(q(undefined, 'score_desc')).toEqual([ids[1], ids[3], ids[0], ids[2], ids[4]]);
    expect(store.flaggedCount()).toBe(2);
    const h = store.histogram(4);
    expect(h.bins.reduce((a, b) => a + b.count, 0)).toBe(3);
    expect(h.min).toBeCloseTo(0.2);
    expect(h.max).toBeCloseTo(0.8);
    expect(h.bins[3]).toMatchObject({ count: 1, defect: 1 });
    store.close();
  });

  it('the ranked queue of a 10,000-image project pages quickly', () => {
    const store = ProjectStore.create(join(tmp.dir, 'big'), 'Big');
    const n = 10_000;
    store.db.transaction(() => {
      for (let i = 0; i < n; i++)
        store.insertImage({
          path: join(tmp.dir, `img${i}.png`),
          sha256: 'a'.repeat(64),
          width: 8,
          height: 8,
          batch: 'b',
        });
    })();
    const m = store.addModel({
      dir: 'm',
      settings: {},
      labelGood: 0,
      labelDefect: 0,
      labelIds: [],
      metrics: null,
      warnings: [],
      runId: null,
    });
    store.saveScores(
      m.id,
      Array.from({ length: n }, (_, i) => ({
        imageId: i + 1,
        total: Math.sin(i),
        perHead: { seen: 1 },
        heatmap: { h: 7, w: 7, data: new Float32Array(49) },
      })),
    );
    store.setThreshold(0.5);
    const t0 = performance.now();
    const page = store.listImages({
      offset: 5000,
      limit: 100,
      sort: 'score_desc',
      filter: { aboveThreshold: false },
    });
    const ids = store.imageIds({ aboveThreshold: true }, 'score_desc');
    const hist = store.histogram(30);
    const ms = performance.now() - t0;
    expect(page.items).toHaveLength(100);
    expect(page.items[0].score!).toBeGreaterThanOrEqual(page.items[99].score!);
    expect(ids.length).toBe(store.flaggedCount());
    expect(hist.bins.reduce((a, b) => a + b.count, 0)).toBe(n);
    expect(ms).toBeLessThan(1000);
    store.close();
  });

  it('labels for unknown images or classes are refused and nothing is half-applied', async () => {
    const { store, ids } = await projectWithImages(2);
    expect(() => store.setLabels([ids[0], 9999], 'good', null)).toThrow(AppError);
    expect(store.getImage(ids[0]).label).toBe('unlabelled');
    expect(() => store.setLabels([ids[0]], 'defect', 12345)).toThrow(/class 12345/);
    store.close();
  });

  it('a run left running by a killed app is marked failed on open and its folder removed', async () => {
    const { store, dir } = await projectWithImages(2);
    const previous = store.addModel({
      dir: 'models/run-0',
      settings: {},
      labelGood: 2,
      labelDefect: 0,
      labelIds: [],
      metrics: null,
      warnings: [],
      runId: null,
    });
    const runId = store.startRun({});
    const half = store.runDir(runId);
    await import('node:fs/promises').then((fs) => fs.mkdir(half, { recursive: true }));
    store.close();
    const again = ProjectStore.open(dir);
    expect(again.getRun(runId)).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/interrupted/),
    });
    expect(existsSync(half)).toBe(false);
    expect(again.activeModel()?.id).toBe(previous.id);
    again.close();
  });
});
