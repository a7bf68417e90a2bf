import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  bcePerSample,
  deviationPerSample,
  draLoss,
  focalPerSample,
  priorStats,
  routeLabels,
  type SampleLabel,
} from '../../../src-main/engine/train/losses';
import { Rng } from '../../../src-main/engine/util/rng';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const vals = (t: tf.Tensor) => Array.from(t.dataSync());

describe('deviation loss', () => {
  it('matches a hand computation', () => {
    // Prior mean 0.1, std 2: dev = (s - 0.1) / 2.
    // normal s=0.5   -> dev 0.2   -> |dev| = 0.2
    // normal s=-0.3  -> dev -0.2  -> |dev| = 0.2
    // anomaly s=3    -> dev 1.45  -> max(0, 5 - 1.45) = 3.55
    // anomaly s=12.1 -> dev 6     -> max(0, 5 - 6) = 0
    const l = deviationPerSample(tf.tensor1d([0.5, -0.3, 3, 12.1]), tf.tensor1d([0, 0, 1, 1]), {
      mean: 0.1,
      std: 2,
    });
    const v = vals(l);
    expect(v[0]).toBeCloseTo(0.2, 5);
    expect(v[1]).toBeCloseTo(0.2, 5);
    expect(v[2]).toBeCloseTo(3.55, 5);
    expect(v[3]).toBeCloseTo(0, 5);
  });

  it('draws 5000 fresh N(0,1) samples per call from the seeded generator', () => {
    const rng = new Rng(3);
    const a = priorStats(rng);
    const b = priorStats(rng);
    expect(a).not.toEqual(b); // fresh each call
    for (const s of [a, b]) {
      // Standard error of the mean of 5000 draws is 0.014.
      expect(Math.abs(s.mean)).toBeLessThan(0.06);
      expect(Math.abs(s.std - 1)).toBeLessThan(0.05);
    }
    expect(priorStats(new Rng(3))).toEqual(a); // same seed, same draws
  });
});

describe('BCE and focal losses', () => {
  it('match hand-computed values (score as logit)', () => {
    const bce = vals(bcePerSample(tf.tensor1d([0, 2, 2]), tf.tensor1d([1, 0, 1])));
    expect(bce[0]).toBeCloseTo(Math.log(2), 5); // -log(sigmoid(0))
    expect(bce[1]).toBeCloseTo(2 + Math.log(1 + Math.exp(-2)), 5); // -log(1 - sigmoid(2))
    expect(bce[2]).toBeCloseTo(Math.log(1 + Math.exp(-2)), 5); // -log(sigmoid(2))
    const focal = vals(focalPerSample(tf.tensor1d([0, 2]), tf.tensor1d([1, 1])));
    expect(focal[0]).toBeCloseTo(0.25 * Math.log(2), 5); // (1 - 0.5)^2 * ln 2
    const p = 1 / (1 + Math.exp(-2));
    expect(focal[1]).toBeCloseTo((1 - p) ** 2 * -Math.log(p), 5);
  });
});

describe('routing of labels to heads', () => {
  it('follows dra.md: normality all (target normals), seen 0/1, pseudo 0/2, residual all (target anomalies)', () => {
    const labels: SampleLabel[] = [0, 1, 2];
    const r = routeLabels(labels);
    expect(Array.from(r.normality.mask)).toEqual([1, 1, 1]);
    expect(Array.from(r.normality.target)).toEqual([1, 0, 0]);
    expect(Array.from(r.seen.mask)).toEqual([1, 1, 0]);
    expect(Array.from(r.seen.target)).toEqual([0, 1, 0]);
    expect(Array.from(r.pseudo.mask)).toEqual([1, 0, 1]);
    expect(Array.from(r.pseudo.target)).toEqual([0, 0, 1]);
    expect(Array.from(r.residual.mask)).toEqual([1, 1, 1]);
    expect(Array.from(r.residual.target)).toEqual([0, 1, 1]);
  });

  it('each head loss is the mean over its own inputs, and the total is their sum', () => {
    // BCE keeps the arithmetic free of the random prior. Labels: normal, seen, pseudo, normal.
    const labels: SampleLabel[] = [0, 1, 2, 0];
    const s = tf.tensor1d([0, 1, 2, 3]);
    const { total, perHead } = draLoss(
      'bce',
      { seen: s, pseudo: s, residual: s, normality: s },
      labels,
      new Rng(1),
    );
    const b = (x: number, y: number) => Math.max(x, 0) - x * y + Math.log1p(Math.exp(-Math.abs(x)));
    const seen = (b(0, 0) + b(1, 1) + b(3, 0)) / 3;
    const pseudo = (b(0, 0) + b(2, 1) + b(3, 0)) / 3;
    const residual = (b(0, 0) + b(1, 1) + b(2, 1) + b(3, 0)) / 4;
    const normality = (b(0, 1) + b(1, 0) + b(2, 0) + b(3, 1)) / 4;
    expect(perHead.seen!.dataSync()[0]).toBeCloseTo(seen, 5);
    expect(perHead.pseudo!.dataSync()[0]).toBeCloseTo(pseudo, 5);
    expect(perHead.residual!.dataSync()[0]).toBeCloseTo(residual, 5);
    expect(perHead.normality!.dataSync()[0]).toBeCloseTo(normality, 5);
    expect(total.dataSync()[0]).toBeCloseTo(seen + pseudo + residual + normality, 5);
  });

  it('skips a head with no inputs or on request (unsupervised: no seen head)', () => {
    const s = tf.tensor1d([1, 2]);
    const labels: SampleLabel[] = [0, 2];
    const { perHead } = draLoss(
      'bce',
      { seen: s, pseudo: s, residual: s, normality: s },
      labels,
      new Rng(1),
      ['seen'],
    );
    expect(perHead.seen).toBeUndefined();
    expect(Object.keys(perHead).sort()).toEqual(['normality', 'pseudo', 'residual']);
  });
});
