/**
 * Review (threshold.get), Evaluate (evaluate.run), the PDF and the CSV give the same false
 * alarms and catches for the same model and threshold: one rule (api/threshold.ts ratesAt)
 * on one set of images, each image by its held-out evidence.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiService } from '../../../src-main/api/service';
import {
  countedEvidence,
  foldMappings,
  modelEvidence,
  MIN_REFERENCE,
  queuePicks,
  ratesAt,
  referenceSample,
} from '../../../src-main/api/threshold';
import { tempDir } from '../app/helpers';
import { buildProject, type SyntheticImage } from './helpers';

// The model trained on the first five (buildProject trains on the first three; set below).
const images: SyntheticImage[] = [
  { name: 't-good-1.png', batch: 'b', label: 'good', total: -3 },
  { name: 't-good-2.png', batch: 'b', label: 'good', total: -1 },
  { name: 't-good-3.png', batch: 'b', label: 'good', total: 1 },
  { name: 't-def-1.png', batch: 'b', label: 'defect', cls: 'defect', total: 9 },
  { name: 't-def-2.png', batch: 'b', label: 'defect', total: 7 },
  { name: 'h-good-1.png', batch: 'b', label: 'good', total: 2.5 },
  { name: 'h-good-2.png', batch: 'b', label: 'good', total: 0.5 },
  { name: 'h-def.png', batch: 'b', label: 'defect', total: 3.5 },
  { name: 'u-1.png', batch: 'b', total: 6 },
  { name: 'u-2.png', batch: 'b', total: 0 },
];

describe('one rule, one basis for the rates', () => {
  let tmp: ReturnType<typeof tempDir>;
  let api: ApiService;
  beforeEach(() => {
    tmp = tempDir('swan-one-basis-');
    api = new ApiService({ projectsRoot: join(tmp.dir, 'projects') });
  });
  afterEach(async () => {
    await api.close();
    tmp.cleanup();
  });

  it('Review, Evaluate, the PDF and the CSV count the same false alarms and catches', async () => {
    const b = await buildProject(tmp.dir, images, { threshold: null });
    const trained = b.ids.slice(0, 5);
    // Out-of-fold z of the training images: carried over by the in-sample good scores of
    // the model (-3, -1, 1: mean -1, sd 2), so z 1.5 -> 2, z 0.25 -> -0.5, z 3 -> 5, z 1 -> 1.
    const z = [1.5, 0.25, 1, 3, 1];
    const metrics = {
      folds: 3,
      n_good: 3,
      n_defect: 2,
      method: 'k-fold cross-validation',
      out_of_fold: Object.fromEntries(
        trained.map((id, k) => [id, { label: k < 3 ? 'good' : 'defect', total: 100 + k, z: z[k] }]),
      ),
    };
    b.store.db
      .prepare('UPDATE models SET metrics = ?, label_ids = ? WHERE id = ?')
      .run(JSON.stringify(metrics), JSON.stringify(trained), b.modelId);
    b.store.close();
    await api.invoke('project.open', { path: join(tmp.dir, 'project') });

    // Good evidence: 2, -0.5, 1 (carried over) and 2.5, 0.5 (held out); defects 5, 1, 3.5.
    const set = await api.invoke('threshold.set', { threshold: 1.5 });
    const review = (await api.invoke('threshold.get', {})).rates!;
    expect(review).toMatchObject({
      falseAlarms: 2,
      goodCount: 5,
      caught: 2,
      defectCount: 3,
      goodBasis: 'out-of-fold',
      defectBasis: 'out-of-fold',
    });
    expect(set.rates).toEqual(review);
    // The queue: the two unlabelled images, one above 1.5.
    expect(set.queue).toEqual({ unlabelled: 2, flagged: 1 });

    const ev = (await api.invoke('evaluate.run', {})).models[0];
    expect(ev.confusion).toEqual({
      threshold: 1.5,
      fp: review.falseAlarms,
      tn: review.goodCount - review.falseAlarms,
      tp: review.caught,
      fn: review.defectCount - review.caught,
    });
    expect(ev.counted).toEqual({ good: review.goodCount, defect: review.defectCount });

    const r = await api.invoke('report.export', { format: 'both', outDir: join(tmp.dir, 'out') });
    const text = execFileSync('pdftotext', [r.pdf!, '-'], { encoding: 'utf8' }).replace(/\s+/g, ' ');
    expect(text).toContain(
      `(${review.falseAlarms} of ${review.goodCount} good images, those trained on by their cross-validation scores, above it`,
    );
    expect(text).toContain(
      `(${review.caught} of ${review.defectCount} defect images, those trained on by their cross-validation scores, above it`,
    );
    // The PDF prints "defect", not "defect (defect)", for a class named like the label.
    expect(text).not.toContain('defect (defect)');

    const rows = parse(readFileSync(r.csv!), { columns: true }) as Record<string, string>[];
    const count = (o: string) => rows.filter((x) => x.rate_outcome === o).length;
    expect(count('false alarm')).toBe(review.falseAlarms);
    expect(count('false alarm') + count('good pass')).toBe(review.goodCount);
    expect(count('caught')).toBe(review.caught);
    expect(count('caught') + count('missed')).toBe(review.defectCount);
    // The CSV's rate_score is the evidence on the readable scale: the threshold splits it as counted.
    const t = Number(rows[0].threshold);
    for (const row of rows.filter((x) => x.rate_outcome === 'false alarm' || x.rate_outcome === 'caught'))
      expect(Number(row.rate_score)).toBeGreaterThan(t);
  });

  it('out-of-fold evidence goes onto the model scale by the unlabelled images both scored', async () => {
    // 5 labelled (trained on) and MIN_REFERENCE + 2 unlabelled images scored 0, 1, 2, ...
    const n = MIN_REFERENCE + 2;
    const imgs: SyntheticImage[] = [
      ...images.slice(0, 5),
      ...Array.from({ length: n }, (_, k) => ({ name: `r-${k}.jpg`, batch: 'b', total: k, file: true })),
    ];
    const b = await buildProject(tmp.dir, imgs, { threshold: null });
    const trained = b.ids.slice(0, 5);
    const unlabelled = b.ids.slice(5);
    // The fold models' scores of the unlabelled images: fold 0 on half the final scale minus 1
    // (final = 2 x + 2), fold 1 shifted by 3 (final = x + 3).
    const ref = {
      ids: unlabelled,
      folds: [unlabelled.map((_, k) => k / 2 - 1), unlabelled.map((_, k) => k - 3)],
    };
    const oof = [
      { fold: 0, total: 1.5 }, // -> 5
      { fold: 1, total: -2 }, // -> 1
      { fold: 0, total: 0 }, // -> 2
      { fold: 1, total: 4 }, // -> 7
      { fold: 1, total: 6 }, // -> 9 (z would say otherwise)
    ];
    const metrics = {
      folds: 2,
      n_good: 3,
      n_defect: 2,
      out_of_fold: Object.fromEntries(
        trained.map((id, k) => [id, { label: k < 3 ? 'good' : 'defect', ...oof[k], z: 100 }]),
      ),
      reference_scores: ref,
    };
    b.store.db
      .prepare('UPDATE models SET metrics = ?, label_ids = ? WHERE id = ?')
      .run(JSON.stringify(metrics), JSON.stringify(trained), b.modelId);
    const ev = modelEvidence(b.store.db, b.modelId!);
    expect(ev.slice(0, 5).map((e) => e.basis)).toEqual(Array(5).fill('out-of-fold'));
    [5, 1, 2, 7, 9].forEach((x, k) => expect(ev[k].score).toBeCloseTo(x, 9));
    // Too few images scored by both: that fold falls back to z (and says nothing false).
    const few = { ids: ref.ids.slice(0, MIN_REFERENCE - 1), folds: ref.folds.map((f) => f.slice(0, MIN_REFERENCE - 1)) };
    const finals = new Map(unlabelled.map((id, k) => [id, k]));
    expect(foldMappings(few, finals)).toEqual([null, null]);
    expect(foldMappings(ref, finals)[1]!(0)).toBeCloseTo(3, 9);
    // What a retrain asks the fold models to score: the images outside the training set.
    expect(referenceSample(b.store.db, new Set(trained)).map((r) => Number(r.id))).toEqual(
      unlabelled,
    );
    expect(referenceSample(b.store.db, new Set(trained), 4)).toHaveLength(4);
    b.store.close();
  });

  it('defects decided from an earlier queue do not count for the catch rate; good ones do', async () => {
    // Model 1 trained on the first three; u-1 (6) is above its threshold 1, u-2 (0) is not.
    const b = await buildProject(tmp.dir, images, { threshold: 1 });
    const [u1, u2] = b.ids.slice(8);
    const hDef = b.ids[7];
    const later = (iso: string) => new Date(Date.parse(iso) + 1000).toISOString();
    const m1 = b.store.db.prepare('SELECT created_at AS at FROM models WHERE id = ?').get(b.modelId) as { at: string };
    // Decided after model 1 flagged them: u-1 a defect, u-2 good; h-def was labelled before.
    b.store.setLabels([u1], 'defect', null);
    b.store.setLabels([u2], 'good', null);
    b.store.db.prepare('UPDATE labels SET updated_at = ? WHERE image_id IN (?, ?)').run(later(m1.at), u1, u2);
    b.store.db.prepare('UPDATE labels SET updated_at = ? WHERE image_id = ?').run('2000-01-01T00:00:00.000Z', hDef);
    const m2 = b.store.addModel({
      dir: 'models/run-1',
      settings: { seed: 0 },
      labelGood: 2,
      labelDefect: 1,
      labelIds: b.ids.slice(0, 3),
      metrics: null,
      warnings: [],
      runId: null,
    });
    b.store.db.prepare('UPDATE models SET created_at = ? WHERE id = ?').run(later(later(m1.at)), m2.id);
    b.store.saveScores(
      m2.id,
      b.ids.map((id, k) => ({ imageId: id, total: images[k].total ?? 0, perHead: {}, heatmap: null })),
    );
    // Found by model 1's queue: for model 1 itself (held out) no random defect either.
    expect([...queuePicks(b.store.db)]).toEqual([u1]);
    expect(modelEvidence(b.store.db, b.modelId!).find((e) => e.imageId === u1)?.picked).toBe(true);
    // Labelled before any model: no pick.
    b.store.db.prepare('UPDATE labels SET updated_at = ? WHERE image_id = ?').run('2000-01-01T00:00:00.000Z', u1);
    expect(queuePicks(b.store.db).size).toBe(0);
    b.store.db.prepare('UPDATE labels SET updated_at = ? WHERE image_id = ?').run(later(m1.at), u1);
    const ev = modelEvidence(b.store.db, m2.id);
    expect(countedEvidence(ev, 'defect').map((e) => e.imageId)).not.toContain(u1);
    expect(countedEvidence(ev, 'good').map((e) => e.imageId)).toContain(u2);
    expect(ratesAt(1, ev).defectsPicked).toBe(1);
    b.store.close();
  });
});
