import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildKnn,
  knnBaselineScores,
  knnLeaveOneOut,
  knnScores,
  pooledVector,
  stats,
} from '../../../src-main/engine/infer/knn';
import type { FeatureMap, ImageFeatures } from '../../../src-main/engine/types';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A 1x2 map (two patches) with 2 channels. */
const img = (a: [number, number], b: [number, number]): ImageFeatures => ({
  levels: [{ h: 1, w: 2, c: 2, data: new Float32Array([...a, ...b]) } satisfies FeatureMap],
});

describe('kNN head', () => {
  // Pooled (mean of the two patches) then L2-normalised:
  // n0 -> (1, 0); n1 -> (0, 1); n2 -> (1, 1)/sqrt(2).
  const normals = [img([2, 0], [0, 0]), img([0, 1], [0, 1]), img([1, 0], [0, 1])];

  it('pools and L2-normalises level-0 features', () => {
    const v = pooledVector(normals[2].levels[0]);
    expect(v[0]).toBeCloseTo(Math.SQRT1_2, 6);
    expect(v[1]).toBeCloseTo(Math.SQRT1_2, 6);
  });

  it('leave-one-out distances match a hand computation', () => {
    // |(1,0) - (0,1)| = sqrt(2); |(1,0) - (.707,.707)| = sqrt(2 - sqrt(2)) = 0.7654
    const knn = buildKnn(normals, false);
    const loo = Array.from(knnLeaveOneOut(knn, normals, 0.5).image);
    const d = Math.sqrt(2 - Math.SQRT2);
    expect(loo[0]).toBeCloseTo(d, 5);
    expect(loo[1]).toBeCloseTo(d, 5);
    expect(loo[2]).toBeCloseTo(d, 5);
    const st = stats([1, 2, 3]);
    expect(st.mean).toBe(2);
    expect(st.std).toBeCloseTo(1, 6);
  });

  it('scores a new image by its nearest normal, and a training normal leave-one-out', () => {
    const knn = buildKnn(normals, false);
    const q = img([0.2, 3], [0, 1]); // pooled (0.1, 2): nearest is n1 = (0, 1)
    const s = knnScores(knn, [q, normals[0]], 0.5).image;
    const n = Math.hypot(0.1, 2);
    expect(s[0]).toBeCloseTo(Math.hypot(0.1 / n, 2 / n - 1), 5);
    expect(s[1]).toBeCloseTo(Math.sqrt(2 - Math.SQRT2), 5); // n0 itself is left out
    expect(knnBaselineScores(normals, [normals[0]])[0]).toBeCloseTo(s[1], 5);
  });

  it('patch variant: per-patch distance to the nearest patch of another normal', () => {
    const knn = buildKnn(normals, true);
    // Query patches (1,0) and (0,1): both occur among the normals' patches.
    const q = img([5, 0], [0, 2]);
    const r = knnScores(knn, [q], 0.5);
    expect(Array.from(r.patch!.maps)).toEqual([0, 0]);
    // A patch (1,1)/sqrt2 is sqrt(2 - sqrt2) from both (1,0) and (0,1).
    const r2 = knnScores(knn, [img([1, 1], [1, 0])], 0.5);
    expect(r2.patch!.maps[0]).toBeCloseTo(Math.sqrt(2 - Math.SQRT2), 5);
    expect(r2.patch!.maps[1]).toBeCloseTo(0, 5);
    expect(r2.patch!.score[0]).toBeCloseTo(Math.sqrt(2 - Math.SQRT2), 5); // top-1 of 2 patches
  });
});
