import { describe, expect, it } from 'vitest';
import { matchedNormals } from '../../../src-main/engine/train/matched';
import { planBatch, type SamplerConfig } from '../../../src-main/engine/train/sampler';
import type { ImageFeatures } from '../../../src-main/engine/types';
import { Rng } from '../../../src-main/engine/util/rng';

/** A 1x1x3 feature map: its pooled vector is the direction v. */
const feat = (v: [number, number, number]): ImageFeatures => ({
  levels: [{ h: 1, w: 1, c: 3, data: Float32Array.from(v) }],
});

// Two kinds of normals (say two cell types): along x (0-2), and along y (3-5).
const normals = [
  feat([1, 0, 0]),
  feat([1, 0.1, 0]),
  feat([1, 0.2, 0]),
  feat([0, 1, 0]),
  feat([0.1, 1, 0]),
  feat([0.2, 1, 0.1]),
];

describe('matched negatives', () => {
  it('picks the normals nearest to the anomaly by pooled direction', () => {
    // A y-kind anomaly with a defect along z. Cosines by hand: n3 0.894, n4 0.890, n5 0.916,
    // the x-kind ones 0.175 at most.
    expect(matchedNormals(normals, [feat([0, 1, 0.5])], 2)).toEqual([3, 5]);
  });

  it('shares the pool among the anomalies: one neighbour each when they are as many as the pool', () => {
    // x-kind anomaly: n0 0.894, n1 0.890, n2 0.877; y-kind: n5 first (above).
    expect(matchedNormals(normals, [feat([1, 0, 0.5]), feat([0, 1, 0.5])], 2)).toEqual([0, 5]);
  });

  it('is empty without anomalies or with a pool of 0', () => {
    expect(matchedNormals(normals, [], 5)).toEqual([]);
    expect(matchedNormals(normals, [feat([0, 1, 0.5])], 0)).toEqual([]);
  });
});

describe('sampler with matched negatives', () => {
  const cfg: SamplerConfig = {
    normals: 75,
    anomalies: 1,
    pseudoCounts: Array(75).fill(4),
    batchNormals: 32,
    batchAnomalies: 16,
    referenceCount: 5,
    pseudoProbability: 0.5,
    transforms: 8,
  };

  it('fills half of the normal slots from the matched pool, the rest from all normals', () => {
    const matched = [7, 40];
    let fromPool = 0;
    for (let s = 0; s < 20; s++) {
      const plan = planBatch(new Rng(s), { ...cfg, matched: { indices: matched, perBatch: 16 } });
      const normalSide = plan.items.filter((i) => i.label !== 1);
      expect(normalSide).toHaveLength(32);
      const hits = normalSide.filter((i) => matched.includes(i.index)).length;
      expect(hits).toBeGreaterThanOrEqual(16);
      fromPool += hits;
    }
    // Without the pool, two given normals fill 32 * 2/75 < 1 slot per batch on average.
    let plain = 0;
    for (let s = 0; s < 20; s++) {
      plain += planBatch(new Rng(s), cfg).items.filter(
        (i) => i.label !== 1 && matched.includes(i.index),
      ).length;
    }
    expect(plain).toBeLessThan(fromPool / 10);
  });

  it('an empty pool changes nothing', () => {
    expect(planBatch(new Rng(3), { ...cfg, matched: { indices: [], perBatch: 16 } })).toEqual(
      planBatch(new Rng(3), cfg),
    );
  });
});
