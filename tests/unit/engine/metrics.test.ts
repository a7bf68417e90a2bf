import { describe, expect, it } from 'vitest';
import { aucRoc, averagePrecision, meanStd, prCurve, rocCurve } from '../../../src-main/engine/metrics';
import { Rng } from '../../../src-main/engine/util/rng';

describe('aucRoc', () => {
  it('matches the scikit-learn documentation example', () => {
    // sklearn: roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) == 0.75.
    // By hand: positive/negative pairs (0.8>0.4) (0.8>0.1) (0.35<0.4) (0.35>0.1) -> 3 of 4.
    expect(aucRoc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBeCloseTo(0.75, 12);
  });

  it('counts a positive-negative tie as one half', () => {
    // positives 0.5, 0.9; negatives 0.5, 0.2, 0.5.
    // 0.5: half + 1 + half = 2; 0.9: 3 wins -> 5 of 6 pairs.
    expect(aucRoc([0.5, 0.5, 0.2, 0.9, 0.5], [1, 0, 0, 1, 0])).toBeCloseTo(5 / 6, 12);
    expect(aucRoc([3, 3, 3, 3], [0, 1, 0, 1])).toBe(0.5);
  });

  it('is 1 for a perfect ranking and 0 for a reversed one', () => {
    expect(aucRoc([1, 2, 3, 4], [0, 0, 1, 1])).toBe(1);
    expect(aucRoc([4, 3, 2, 1], [0, 0, 1, 1])).toBe(0);
  });

  it('equals brute-force pair counting on random scores with many ties', () => {
    const rng = new Rng(7);
    const n = 200;
    const scores = Array.from({ length: n }, () => rng.int(12));
    const labels = Array.from({ length: n }, (_, i) => (i < 5 ? i % 2 : rng.next() < 0.3 ? 1 : 0));
    let wins = 0;
    let pairs = 0;
    for (let i = 0; i < n; i++) {
      if (labels[i] !== 1) continue;
      for (let j = 0; j < n; j++) {
        if (labels[j] !== 0) continue;
        pairs++;
        wins += scores[i] > scores[j] ? 1 : scores[i] === scores[j] ? 0.5 : 0;
      }
    }
    expect(aucRoc(new Float32Array(scores), new Uint8Array(labels))).toBeCloseTo(wins / pairs, 12);
  });

  it('refuses mismatched lengths, a single class and bad labels', () => {
    expect(() => aucRoc([1, 2], [0])).toThrow(/2 scores but 1 labels/);
    expect(() => aucRoc([1, 2], [1, 1])).toThrow(/single class/);
    expect(() => aucRoc([1, 2], [0, 2])).toThrow(/not 0 or 1/);
    expect(() => aucRoc([NaN, 2], [0, 1])).toThrow(/finite/);
  });
});

describe('averagePrecision', () => {
  it('matches the scikit-learn documentation example', () => {
    // sklearn: average_precision_score([0,0,1,1], [0.1,0.4,0.35,0.8]) == 0.8333...
    // Descending: 0.8 (P=1, R=.5), 0.4 (R unchanged), 0.35 (P=2/3, R=1), 0.1 (R unchanged).
    // AP = 0.5*1 + 0.5*2/3 = 5/6.
    expect(averagePrecision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBeCloseTo(5 / 6, 12);
  });

  it('groups tied scores into one threshold', () => {
    // 0.9: tp1 fp0 -> P=1, R=.5; the tied 0.5s: tp2 fp2 -> P=.5, R=1. AP = .5 + .5*.5.
    expect(averagePrecision([0.5, 0.5, 0.2, 0.9, 0.5], [1, 0, 0, 1, 0])).toBeCloseTo(0.75, 12);
    // All tied: one threshold at recall 1, precision = share of positives.
    expect(averagePrecision([1, 1, 1, 1, 1], [1, 0, 0, 0, 1])).toBeCloseTo(0.4, 12);
  });

  it('differs from AUC where it should', () => {
    // Perfect ranking: AP 1.
    expect(averagePrecision([1, 2, 3, 4], [0, 0, 1, 1])).toBe(1);
    // Descending 4(0) 3(1) 2(0) 1(0): only threshold with recall gain is 3: P=1/2.
    expect(averagePrecision([4, 3, 2, 1], [0, 1, 0, 0])).toBeCloseTo(0.5, 12);
  });
});

describe('curves', () => {
  it('gives ROC points per distinct threshold from (0,0) to (1,1)', () => {
    const pts = rocCurve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]);
    expect(pts).toEqual([
      { fpr: 0, tpr: 0, threshold: Infinity },
      { fpr: 0, tpr: 0.5, threshold: 0.8 },
      { fpr: 0.5, tpr: 0.5, threshold: 0.4 },
      { fpr: 0.5, tpr: 1, threshold: 0.35 },
      { fpr: 1, tpr: 1, threshold: 0.1 },
    ]);
  });

  it('gives PR points by increasing recall, starting at precision 1', () => {
    const pts = prCurve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]);
    expect(pts.map((p) => [p.recall, p.precision])).toEqual([
      [0, 1],
      [0.5, 1],
      [0.5, 0.5],
      [1, 2 / 3],
      [1, 0.5],
    ]);
  });
});

describe('meanStd', () => {
  it('uses the population standard deviation (numpy default)', () => {
    const { mean, std } = meanStd([1, 2, 3, 4]);
    expect(mean).toBe(2.5);
    expect(std).toBeCloseTo(Math.sqrt(1.25), 12);
    expect(meanStd([0.7])).toEqual({ mean: 0.7, std: 0 });
    expect(() => meanStd([])).toThrow();
  });
});
