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
});
