import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  fitGlobalHead,
  globalEvidence,
  globalScores,
  GLOBAL_MAX_NORMALS,
  pooledStats,
  weightedRidge,
} from '../../../src-main/engine/heads/global-head';
import type { ImageFeatures } from '../../../src-main/engine/types';
import { aucRoc } from '../../../src-main/engine/metrics';
import { Rng } from '../../../src-main/engine/util/rng';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A 2x2 map with c channels: noise, plus `shift` on channel 0 of every patch for a defect. */
function image(rng: Rng, c: number, shift: number): ImageFeatures {
  const data = new Float32Array(4 * c);
  for (let i = 0; i < data.length; i++) data[i] = rng.next() + (i % c === 0 ? shift : 0);
  return { levels: [{ h: 2, w: 2, c, data }] };
}

describe('global head', () => {
  it('pools the per-channel mean and standard deviation of the level-0 map', () => {
    // Two patches, two channels: channel 0 = (1, 3), channel 1 = (2, 2).
    const v = pooledStats({ h: 1, w: 2, c: 2, data: new Float32Array([1, 2, 3, 2]) });
    expect(Array.from(v)).toEqual([2, 2, 1, 0]);
  });

  it('leave-one-out predictions equal refitting without each row', () => {
    const rng = new Rng(3);
    const xs = Array.from({ length: 9 }, () => Float32Array.from({ length: 4 }, () => rng.next() * 2 - 1));
    const target = [0, 0, 0, 0, 0, 0, 1, 1, 1];
    const weight = target.map((t) => (t ? 1.5 : 0.75));
    const fit = weightedRidge(xs, target, weight, 0.3);
    for (let i = 0; i < xs.length; i++) {
      const keep = xs.map((_, j) => j).filter((j) => j !== i);
      const sub = weightedRidge(
        keep.map((j) => xs[j]),
        keep.map((j) => target[j]),
        keep.map((j) => weight[j]),
        0.3,
      );
      let f = sub.b;
      for (let k = 0; k < 4; k++) f += xs[i][k] * sub.w[k];
      expect(fit.loo[i]).toBeCloseTo(f, 4);
    }
  });

  it('ranks unseen defects above unseen normals, the same way on every run', () => {
    const rng = new Rng(7);
    const normals = Array.from({ length: 30 }, () => image(rng, 6, 0));
    const defects = Array.from({ length: 4 }, () => image(rng, 6, 0.6));
    const test = [
      ...Array.from({ length: 20 }, () => image(rng, 6, 0)),
      ...Array.from({ length: 20 }, () => image(rng, 6, 0.6)),
    ];
    const labels = test.map((_, i) => (i < 20 ? 0 : 1));
    const a = fitGlobalHead(normals, defects);
    const b = fitGlobalHead(normals, defects);
    expect(a.state.source).toBe('level0');
    expect(a.state.dim).toBe(12);
    const sa = globalScores(a.state, test);
    expect(Array.from(sa)).toEqual(Array.from(globalScores(b.state, test)));
    expect(aucRoc(sa, labels)).toBeGreaterThan(0.95);
    // Calibrated on held-out normals: unseen normals sit near z = 0, defects far above.
    const z = Array.from(sa, (v) => (v - a.calibration.mean) / a.calibration.std);
    const meanZ = (from: number, to: number) => z.slice(from, to).reduce((s, v) => s + v, 0) / (to - from);
    expect(Math.abs(meanZ(0, 20))).toBeLessThan(1);
    expect(meanZ(20, 40)).toBeGreaterThan(2);
  });

  it("reads the extractor's pooled statistics when every image has them, and says so when a scored one lacks them", () => {
    const rng = new Rng(1);
    const withPooled = (f: ImageFeatures): ImageFeatures => ({ ...f, pooled: pooledStats(f.levels[0]) });
    const normals = Array.from({ length: 6 }, () => withPooled(image(rng, 3, 0)));
    const defects = [withPooled(image(rng, 3, 1))];
    const fit = fitGlobalHead(normals, defects);
    expect(fit.state.source).toBe('pooled');
    expect(() => globalScores(fit.state, [image(rng, 3, 0)])).toThrow(/pooled statistics/);
    const bad = withPooled(image(rng, 3, 0));
    bad.pooled![2] = Number.NaN;
    expect(() => fitGlobalHead([...normals, bad], defects)).toThrow(/non-finite/);
  });

  it('a head fitted before the histogram was appended reads the layer-statistics prefix; a short vector is refused', () => {
    const rng = new Rng(2);
    const withPooled = (f: ImageFeatures): ImageFeatures => ({ ...f, pooled: pooledStats(f.levels[0]) });
    const fit = fitGlobalHead(
      Array.from({ length: 6 }, () => withPooled(image(rng, 3, 0))),
      [withPooled(image(rng, 3, 1))],
    );
    const test = Array.from({ length: 4 }, () => withPooled(image(rng, 3, 0.5)));
    // Today's extractor appends more values (the luminance histogram) after the 2c statistics.
    const longer = test.map((f) => ({ ...f, pooled: Float32Array.from([...f.pooled!, 0.5, 0.25]) }));
    expect(Array.from(globalScores(fit.state, longer))).toEqual(Array.from(globalScores(fit.state, test)));
    const shorter = test.map((f) => ({ ...f, pooled: f.pooled!.slice(0, 5) }));
    expect(() => globalScores(fit.state, shorter)).toThrow(/expects 6 pooled values, the features give 5/);
  });

  it('weighs in with the square root of the labelled defects, up to ten; models from before get 1', () => {
    expect([1, 4, 9, 10, 40].map((defects) => globalEvidence({ defects }))).toEqual([
      1,
      2,
      3,
      Math.sqrt(10),
      Math.sqrt(10),
    ]);
    expect(globalEvidence({})).toBe(1);
  });

  it('needs a labelled defect, and thins a large normal set to a bounded solve', () => {
    const rng = new Rng(2);
    const normals = Array.from({ length: GLOBAL_MAX_NORMALS + 40 }, () => image(rng, 2, 0));
    expect(() => fitGlobalHead(normals, [])).toThrow(/at least one labelled defect/);
    const fit = fitGlobalHead(normals, [image(rng, 2, 2)]);
    expect(Number.isFinite(fit.calibration.std)).toBe(true);
    expect(globalScores(fit.state, [image(rng, 2, 2)])[0]).toBeGreaterThan(
      globalScores(fit.state, [image(rng, 2, 0)])[0],
    );
  });
});
