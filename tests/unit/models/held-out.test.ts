import { describe, expect, it } from 'vitest';
import {
  appMetrics,
  heldOutLine,
  heldOutSummary,
  outOfFoldScores,
  withoutImageScores,
} from '../../../src-main/models/held-out';

const manifest = {
  metrics: {
    auc_roc: 0.92534,
    ap: 0.6593,
    auc_roc_knn: 0.81,
    auc_roc_seen: 0.91,
    folds: 3,
    n_good: 75,
    n_defect: 10,
  },
  validation: {
    method: 'k-fold cross-validation',
    folds: 3,
    nGood: 75,
    nDefect: 10,
    seed: 0,
    notes: [],
    outOfFold: {
      '12': { label: 'good', total: 1.5, perHead: { seen: 1 } },
      '13': { label: 'defect', total: 9, perHead: { seen: 4 } },
      bad: { label: 'good', total: 'x' },
    },
  },
};

describe('held-out metrics of a model version', () => {
  it('appMetrics: numbers, method and out-of-fold totals from the manifest; nothing without metrics', () => {
    const m = appMetrics(manifest)!;
    expect(m).toEqual({
      ...manifest.metrics,
      method: 'k-fold cross-validation',
      out_of_fold: { '12': { label: 'good', total: 1.5 }, '13': { label: 'defect', total: 9 } },
    });
    expect([...outOfFoldScores(m)]).toEqual([
      [12, { label: 'good', total: 1.5 }],
      [13, { label: 'defect', total: 9 }],
    ]);
    expect(outOfFoldScores(null).size).toBe(0);
    expect(appMetrics({ metrics: {} })).toBeNull();
    expect(appMetrics(null)).toBeNull();
    expect(withoutImageScores(m)).not.toHaveProperty('out_of_fold');
    expect(withoutImageScores(m)).toHaveProperty('auc_roc', 0.92534);
  });

  it('says what was measured and how, per head in the paper order', () => {
    const m = appMetrics(manifest);
    expect(heldOutLine(m)).toBe(
      'AUC-ROC 0.925, AP 0.659 (3-fold cross-validation on 75 good / 10 defect labelled images)',
    );
    expect(heldOutSummary(m)!.perHead).toBe('seen 0.910, knn 0.810');
    expect(heldOutLine({ aucRoc: 0.9 })).toBeNull();
    expect(
      heldOutLine({ folds: 0, n_good: 2, n_defect: 1, notes: ['cross-validation needs at least 2 folds'] }),
    ).toBe(
      'not measured (cross-validation could not run on 2 good / 1 defect labelled images): cross-validation needs at least 2 folds',
    );
  });
});
