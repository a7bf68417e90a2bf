import { describe, expect, it } from 'vitest';
import { planBatch, type SamplerConfig } from '../../../src-main/engine/train/sampler';
import { patchPermutation, transformCount } from '../../../src-main/engine/train/transforms';
import { Rng } from '../../../src-main/engine/util/rng';

const cfg = (over: Partial<SamplerConfig> = {}): SamplerConfig => ({
  normals: 75,
  anomalies: 10,
  pseudoCounts: Array(75).fill(4),
  batchNormals: 32,
  batchAnomalies: 16,
  referenceCount: 5,
  pseudoProbability: 0.5,
  transforms: 8,
  ...over,
});

describe('sampler', () => {
  it('draws 32 normals (distinct) and 16 seen anomalies per batch, and 5 references', () => {
    const plan = planBatch(new Rng(1), cfg());
    expect(plan.items).toHaveLength(48);
    const normalSide = plan.items.slice(0, 32);
    expect(normalSide.every((s) => s.label === 0 || s.label === 2)).toBe(true);
    expect(new Set(normalSide.map((s) => s.index)).size).toBe(32);
    expect(plan.items.slice(32).every((s) => s.label === 1 && s.index < 10)).toBe(true);
    expect(plan.references).toHaveLength(5);
    expect(plan.references.every((s) => s.label !== 1)).toBe(true);
  });

  it('1-shot repeats the single anomaly 16 times', () => {
    const plan = planBatch(new Rng(2), cfg({ anomalies: 1 }));
    const anomalies = plan.items.filter((s) => s.label === 1);
    expect(anomalies).toHaveLength(16);
    expect(anomalies.every((s) => s.index === 0)).toBe(true);
  });

  it('replaces each normal by one of its pseudo variants with probability 0.5 (batch and references)', () => {
    const rng = new Rng(3);
    let pseudo = 0;
    let total = 0;
    let refPseudo = 0;
    let refTotal = 0;
    for (let i = 0; i < 200; i++) {
      const plan = planBatch(rng, cfg());
      for (const s of plan.items.filter((x) => x.label !== 1)) {
        total++;
        if (s.label === 2) {
          pseudo++;
          expect(s.variant).toBeGreaterThanOrEqual(0);
          expect(s.variant).toBeLessThan(4);
        }
      }
      refTotal += plan.references.length;
      refPseudo += plan.references.filter((s) => s.label === 2).length;
    }
    // 6400 draws: standard error 0.006.
    expect(Math.abs(pseudo / total - 0.5)).toBeLessThan(0.03);
    expect(Math.abs(refPseudo / refTotal - 0.5)).toBeLessThan(0.07);
  });

  it('without anomalies the batch holds normals only; with few normals they repeat; no pool means no pseudo', () => {
    const plan = planBatch(new Rng(4), cfg({ normals: 3, anomalies: 0, pseudoCounts: [0, 0, 0] }));
    expect(plan.items).toHaveLength(32);
    expect(plan.items.every((s) => s.label === 0 && s.index < 3)).toBe(true);
    expect(new Set(plan.items.map((s) => s.index)).size).toBe(3);
  });

  it('is deterministic for a seed', () => {
    expect(planBatch(new Rng(9), cfg())).toEqual(planBatch(new Rng(9), cfg()));
  });
});

describe('dihedral transforms of feature maps', () => {
  it('are permutations; four quarter turns give the identity; a quarter turn is a rotation', () => {
    expect(transformCount(7, 7)).toBe(8);
    expect(transformCount(4, 6)).toBe(4);
    for (let t = 0; t < 8; t++) {
      const p = patchPermutation(t, 3, 3);
      expect(new Set(p).size).toBe(9);
    }
    expect(Array.from(patchPermutation(0, 3, 3))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    // Clockwise quarter turn of [[0,1,2],[3,4,5],[6,7,8]] is [[6,3,0],[7,4,1],[8,5,2]].
    expect(Array.from(patchPermutation(1, 3, 3))).toEqual([6, 3, 0, 7, 4, 1, 8, 5, 2]);
    for (let t = 0; t < 4; t++) expect(new Set(patchPermutation(t, 2, 3)).size).toBe(6);
  });
});
