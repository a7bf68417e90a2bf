import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiService } from '../../../src-main/api/service';
import { modelMetricRows } from '../../../src-main/report/pdf';
import { tempDir } from '../app/helpers';
import { buildProject, type SyntheticImage } from './helpers';

const pdfText = (file: string): string =>
  execFileSync('pdftotext', ['-layout', file, '-'], { encoding: 'utf8' });

// buildProject's model trained on the first three images.
const images: SyntheticImage[] = [
  { name: 'g-train-1.jpg', batch: 'b', label: 'good', total: 0.9, file: true },
  { name: 'g-train-2.jpg', batch: 'b', label: 'good', total: 0.8, file: true },
  { name: 'd-train.jpg', batch: 'b', label: 'defect', cls: 'crack', total: 0.95, file: true },
  { name: 'g-held.jpg', batch: 'b', label: 'good', total: 0.3, file: true },
  { name: 'd-held.jpg', batch: 'b', label: 'defect', cls: 'crack', total: 0.7, file: true },
  { name: 'g-held-2.jpg', batch: 'b', label: 'good', total: 0.1, file: true },
  { name: 'g-held-3.jpg', batch: 'b', label: 'good', total: 0.4, file: true },
  { name: 'g-held-4.jpg', batch: 'b', label: 'good', total: 0.65, file: true },
  { name: 'd-held-2.jpg', batch: 'b', label: 'defect', cls: 'crack', total: 0.62, file: true },
];

describe('report: held-out metrics of the model', () => {
  let tmp: ReturnType<typeof tempDir>;
  let api: ApiService;
  beforeEach(() => {
    tmp = tempDir('swan-heldout-');
    api = new ApiService({ projectsRoot: join(tmp.dir, 'projects') });
  });
  afterEach(async () => {
    await api.close();
    tmp.cleanup();
  });

  it('the PDF states the cross-validated metrics, how they were measured, and the false alarms on out-of-fold scores', async () => {
    const b = await buildProject(tmp.dir, images, { threshold: 0.5 });
    const [g1, g2, d] = b.ids;
    const metrics = {
      auc_roc: 0.9123,
      ap: 0.85,
      auc_roc_seen: 0.9,
      auc_roc_knn: 0.8133,
      folds: 3,
      n_good: 75,
      n_defect: 10,
      method: 'k-fold cross-validation',
      out_of_fold: {
        [g1]: { label: 'good', total: 0.6 },
        [g2]: { label: 'good', total: 0.2 },
        [d]: { label: 'defect', total: 0.8 },
      },
    };
    b.store.db.prepare('UPDATE models SET metrics = ? WHERE id = ?').run(JSON.stringify(metrics), b.modelId);
    b.store.close();
    await api.invoke('project.open', { path: join(tmp.dir, 'project') });
    const r = await api.invoke('report.export', { format: 'pdf', outDir: join(tmp.dir, 'out') });
    const text = pdfText(r.pdf!).replace(/\s+/g, ' ');
    // The AUC of the rates' evidence, not the engine's pooling of the folds (0.912): goods 0.3,
    // 0.1, 0.4, 0.65 (held out) and 0.6, 0.2 (out of fold); defects 0.7, 0.62 and 0.8: 17 of
    // the 18 pairs ranked right. AP: 0.8, 0.7 first (1, 1), then 0.65 (good), 0.62 (3/4).
    expect(text).toContain(
      'Held-out metrics AUC-ROC 0.944 (95 % interval 0.746-1.000), AP 0.917, by 3-fold cross-validation on 6 good / 3 defect labelled images, each on the model\'s own scale (out-of-fold scores)',
    );
    expect(text).toContain('Per-head AUC-ROC seen 0.900, knn 0.813');
    expect(text).not.toContain('0.912');
    expect(text).not.toContain('none recorded at training');
    // Good pool at 0.5: held out 0.3, 0.1, 0.4, 0.65 and the out-of-fold 0.6, 0.2 (not the in-sample 0.9, 0.8).
    expect(text).toContain(
      '33.3 % (2 of 6 good images, those trained on by their cross-validation scores, above it, 95 % interval',
    );
  });

  it('a model without cross-validation says so; one that could not measure says why', () => {
    // Two defects: an AUC was computed, but too few to mean anything: no number printed.
    expect(
      modelMetricRows({ folds: 3, n_good: 35, n_defect: 2, auc_roc: 0.99, ap: 0.9, method: 'k-fold cross-validation' })[0],
    ).toEqual([
      'Held-out metrics',
      'not measured: AUC-ROC not estimable: 35 good and 2 defect labelled images are too few (at least 5 and 3)',
    ]);
    expect(modelMetricRows(null)).toEqual([
      ['Held-out metrics', 'none recorded at training (the model was trained without cross-validation)'],
    ]);
    const rows = modelMetricRows({
      folds: 3,
      n_good: 6,
      n_defect: 0,
      method: 'k-fold cross-validation',
      notes: [
        'AUC-ROC not computed: needs out-of-fold scores of both good and defect images (6 good, 0 defect)',
      ],
      out_of_fold: {},
    });
    expect(rows).toEqual([
      [
        'Held-out metrics',
        'not measured: AUC-ROC not computed: needs out-of-fold scores of both good and defect images (6 good, 0 defect)',
      ],
    ]);
    // An imported model's metrics of another shape are listed as they are.
    expect(modelMetricRows({ aucRoc: 0.931 })).toEqual([['Model metrics', 'aucRoc 0.9310']]);
  });
});
