import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { scoreFeatures, scoreRaw, scoreRawAsync } from '../../../src-main/engine/infer';
import type { DraState } from '../../../src-main/engine/heads/state';
import { trainFast, type FastTrainData } from '../../../src-main/engine/train';
import { normalFeatures, withDefect } from '../../../src-main/engine/train/synthetic';
import { resolveSettings } from '../../../src-main/engine/settings';
import { Rng } from '../../../src-main/engine/util/rng';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const spec = { side: 5, channels: 8 };

describe('scoreFeatures', () => {
  const rng = new Rng(11);
  const normals = Array.from({ length: 12 }, () => normalFeatures(rng, spec));
  const data: FastTrainData = {
    normals,
    anomalies: [withDefect(rng, normalFeatures(rng, spec), { from: 0, to: 2 })],
    pseudo: normals.map((n) => [withDefect(rng, n, { from: 2, to: 4 })]),
  };
  const test = [
    ...Array.from({ length: 6 }, () => normalFeatures(rng, spec)),
    withDefect(rng, normalFeatures(rng, spec), { from: 0, to: 2 }),
  ];
  let state: DraState;

  beforeAll(async () => {
    state = await trainFast(
      data,
      resolveSettings({
        seed: 1,
        steps: 8,
        batchNormals: 8,
        batchAnomalies: 4,
        residualReduce: 4,
        residualWidth: 4,
        normalityWidth: 8,
        knnHead: true,
        knnPatch: true,
      }),
    );
  });

  it("'sum' adds raw DRA heads and the kNN, Gaussian and global z-scores; perHead adds up to total", () => {
    const s = scoreFeatures(state, test, { combine: 'sum' });
    for (const x of s) {
      const p = x.perHead;
      expect(p.global).toBeDefined();
      expect(p.gaussian).toBeDefined();
      expect(x.total).toBeCloseTo(
        p.seen! + p.pseudo! + p.residual! - p.normality! + p.knn! + p.gaussian! + p.global!,
        5,
      );
      expect(p.seen).toBe(x.raw!.seen);
      expect(p.normality).toBe(x.raw!.normality);
      expect(x.heatmap.h).toBe(5);
      expect(x.heatmap.data).toHaveLength(25);
    }
  });

  it("'calibrated' standardises every head by its training-normal mean/std", () => {
    const s = scoreFeatures(state, test, { combine: 'calibrated' });
    const cal = state.calibration;
    for (const x of s) {
      for (const h of ['seen', 'pseudo', 'residual', 'normality'] as const) {
        expect(x.perHead[h]).toBeCloseTo((x.raw![h]! - cal[h]!.mean) / cal[h]!.std, 4);
      }
    }
    // On the training normals themselves the DRA z-scores average 0.
    const onTrain = scoreFeatures(state, normals, { combine: 'calibrated' });
    const meanZ = onTrain.reduce((a, x) => a + x.perHead.pseudo!, 0) / onTrain.length;
    expect(Math.abs(meanZ)).toBeLessThan(1e-4);
  });

  it('knnWeight scales the kNN z-score in the total', () => {
    const one = scoreFeatures(state, test, { knnWeight: 1 });
    const three = scoreFeatures(state, test, { knnWeight: 3 });
    for (let i = 0; i < test.length; i++) {
      expect(three[i].perHead.knn).toBeCloseTo(3 * one[i].perHead.knn!, 5);
      expect(three[i].total - one[i].total).toBeCloseTo(2 * one[i].perHead.knn!, 4);
    }
  });

  it('the kNN head can be turned off per call; batching does not change scores', () => {
    const s = scoreFeatures(state, test, { knn: false });
    expect(s[0].perHead.knn).toBeUndefined();
    const whole = scoreRaw(state, test, 64);
    const oneByOne = scoreRaw(state, test, 1);
    expect(Array.from(oneByOne.residual)).toEqual(Array.from(whole.residual));
    expect(Array.from(oneByOne.maps.seen)).toEqual(Array.from(whole.maps.seen));
  });

  it("scores on plain arrays as forwardLevel does (scoring's default paths against TF.js's kernels)", async () => {
    const tape = scoreRaw(state, test, 64, 'tfjs');
    for (const plain of [scoreRaw(state, test, 3), await scoreRawAsync(state, test, 3)]) {
      for (const head of ['seen', 'pseudo', 'residual', 'normality'] as const) {
        const scale = Math.max(...Array.from(tape[head], Math.abs));
        expect(scale).toBeGreaterThan(0);
        tape[head].forEach((v, i) => expect(Math.abs(plain[head][i] - v)).toBeLessThan(1e-5 * scale + 1e-6));
      }
      for (const head of ['seen', 'pseudo', 'residual'] as const) {
        const scale = Math.max(...Array.from(tape.maps[head], Math.abs));
        tape.maps[head].forEach((v, i) =>
          expect(Math.abs(plain.maps[head][i] - v)).toBeLessThan(1e-5 * scale + 1e-6),
        );
      }
    }
  });

  it('refuses features of another shape with a clear EngineError', () => {
    const odd = normalFeatures(new Rng(1), { side: 4, channels: 8 });
    expect(() => scoreFeatures(state, [odd])).toThrow(/level 0 is 4x4x8, the model was trained on 5x5x8/);
  });
});
