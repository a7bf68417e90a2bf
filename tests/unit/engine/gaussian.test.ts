import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  fitGaussianHead,
  gaussianApplies,
  gaussianScores,
  GAUSSIAN_SHRINK,
} from '../../../src-main/engine/infer/gaussian';
import { pooledVector } from '../../../src-main/engine/infer/knn';
import type { ImageFeatures } from '../../../src-main/engine/types';
import { aucRoc } from '../../../src-main/engine/metrics';
import { Rng } from '../../../src-main/engine/util/rng';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A 1x1 map: its pooled vector is v itself, L2-normalised. */
const asFeatures = (v: number[]): ImageFeatures => ({
  levels: [{ h: 1, w: 1, c: v.length, data: Float32Array.from(v) }],
});

/**
 * Normals around (1, 1, ..., 1) that vary a lot along channel 0 and hardly at all along the
 * others: a Gaussian must treat a step along channel 1 as far more unusual than one along 0.
 */
function normal(rng: Rng, c: number): ImageFeatures {
  return asFeatures(Array.from({ length: c }, (_, k) => 1 + (k === 0 ? 0.5 : 0.02) * (rng.next() * 2 - 1)));
}

/** Mahalanobis distance with the covariance written out plainly (double precision, Gauss-Jordan). */
function reference(bank: Float32Array[], q: Float32Array, shrink: number): number {
  const n = bank.length;
  const d = q.length;
  const mu = Array.from({ length: d }, (_, k) => bank.reduce((s, b) => s + b[k], 0) / n);
  const cov = Array.from({ length: d }, (_, i) =>
    Array.from(
      { length: d },
      (_, j) => bank.reduce((s, b) => s + (b[i] - mu[i]) * (b[j] - mu[j]), 0) / (n - 1),
    ),
  );
  const lambda = (shrink * cov.reduce((s, row, i) => s + row[i], 0)) / d;
  // Solve (cov + lambda I) y = q - mu.
  const a = cov.map((row, i) => [...row.map((v, j) => v + (i === j ? lambda : 0)), q[i] - mu[i]]);
  for (let col = 0; col < d; col++) {
    const p = a[col][col];
    for (let j = col; j <= d; j++) a[col][j] /= p;
    for (let r = 0; r < d; r++) {
      if (r === col) continue;
      const f = a[r][col];
      for (let j = col; j <= d; j++) a[r][j] -= f * a[col][j];
    }
  }
  return Math.sqrt(mu.reduce((s, m, i) => s + (q[i] - m) * a[i][d], 0));
}

describe('Gaussian head', () => {
  it('scores the Mahalanobis distance of the pooled vector, as written out by hand', () => {
    const rng = new Rng(11);
    const normals = Array.from({ length: 30 }, () => normal(rng, 5));
    const fit = fitGaussianHead(normals, 0.05);
    const queries = [normal(rng, 5), asFeatures([1.4, 1, 1, 1, 1]), asFeatures([1, 1.4, 1, 1, 1])];
    const got = gaussianScores(fit.state, queries);
    const bank = normals.map((f) => pooledVector(f.levels[0]));
    queries.forEach((f, i) => {
      expect(got[i]).toBeCloseTo(reference(bank, pooledVector(f.levels[0]), 0.05), 2);
    });
    // The same step is far more unusual along the direction normals do not vary in.
    expect(got[2]).toBeGreaterThan(3 * got[1]);
  });

  it('calibrates on exact leave-one-out distances: each equals refitting without that normal', () => {
    const rng = new Rng(5);
    const normals = Array.from({ length: 12 }, () => normal(rng, 4));
    const shrink = 0.1;
    const fit = fitGaussianHead(normals, shrink);
    const bank = normals.map((f) => pooledVector(f.levels[0]));
    // lambda is held at the full-data value: refit with the rest, same lambda.
    const full = bank.map((b) => b);
    const mu = Array.from({ length: 4 }, (_, k) => full.reduce((s, b) => s + b[k], 0) / 12);
    const traceFull = Array.from(
      { length: 4 },
      (_, k) => full.reduce((s, b) => s + (b[k] - mu[k]) ** 2, 0) / 11,
    ).reduce((s, v) => s + v, 0);
    const loo = bank.map((b, i) => {
      const rest = bank.filter((_, j) => j !== i);
      const m = Array.from({ length: 4 }, (_, k) => rest.reduce((s, r) => s + r[k], 0) / 11);
      const traceRest = Array.from(
        { length: 4 },
        (_, k) => rest.reduce((s, r) => s + (r[k] - m[k]) ** 2, 0) / 10,
      ).reduce((s, v) => s + v, 0);
      // reference() derives lambda from its own trace: scale shrink so that lambda matches.
      return reference(rest, b, (shrink * traceFull) / traceRest);
    });
    const mean = loo.reduce((s, v) => s + v, 0) / loo.length;
    const std = Math.sqrt(loo.reduce((s, v) => s + (v - mean) ** 2, 0) / (loo.length - 1));
    expect(fit.calibration.mean).toBeCloseTo(mean, 3);
    expect(fit.calibration.std).toBeCloseTo(std, 3);
    // Held-out normals score higher than the fitted ones would in-sample.
    const inSample = gaussianScores(fit.state, normals);
    expect(fit.calibration.mean).toBeGreaterThan(inSample.reduce((s, v) => s + v, 0) / inSample.length);
  });

  it('ranks unseen off-distribution images above unseen normals, the same way on every run', () => {
    const rng = new Rng(9);
    const normals = Array.from({ length: 40 }, () => normal(rng, 6));
    const defect = () => {
      const f = normal(rng, 6);
      f.levels[0].data[2] += 0.08; // four times the normals' spread on that channel
      return f;
    };
    const test = [...Array.from({ length: 20 }, () => normal(rng, 6)), ...Array.from({ length: 20 }, defect)];
    const labels = test.map((_, i) => (i < 20 ? 0 : 1));
    const a = fitGaussianHead(normals);
    const b = fitGaussianHead(normals);
    const sa = gaussianScores(a.state, test);
    expect(Array.from(sa)).toEqual(Array.from(gaussianScores(b.state, test)));
    expect(aucRoc(sa, labels)).toBeGreaterThan(0.95);
    expect(a.state.shrink).toBe(GAUSSIAN_SHRINK);
    // Unseen normals sit near z = 0 on the leave-one-out calibration.
    const z = Array.from(sa.slice(0, 20), (v) => (v - a.calibration.mean) / a.calibration.std);
    expect(Math.abs(z.reduce((s, v) => s + v, 0) / z.length)).toBeLessThan(1);
  });

  it('applies only with at least as many normals as channels, and refuses bad input with a clear error', () => {
    expect(gaussianApplies(768, 768)).toBe(true);
    expect(gaussianApplies(767, 768)).toBe(false);
    expect(gaussianApplies(2, 1)).toBe(false);
    const rng = new Rng(1);
    expect(() => fitGaussianHead(Array.from({ length: 5 }, () => normal(rng, 6)))).toThrow(
      /at least 6 normal images, got 5/,
    );
    const bad = Array.from({ length: 8 }, () => normal(rng, 3));
    bad[4].levels[0].data[1] = Number.NaN;
    expect(() => fitGaussianHead(bad)).toThrow(/non-finite/);
    const fit = fitGaussianHead(Array.from({ length: 8 }, () => normal(rng, 3)));
    expect(() => gaussianScores(fit.state, [normal(rng, 4)])).toThrow(
      /expects 3 feature channels, the features give 4/,
    );
    expect(gaussianScores(fit.state, [])).toHaveLength(0);
  });
});
