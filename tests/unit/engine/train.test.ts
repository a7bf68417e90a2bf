import * as tf from '@tensorflow/tfjs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel, saveModel } from '../../../src-main/engine/model-file';
import { aucRoc } from '../../../src-main/engine/metrics';
import {
  releaseScoringTensors,
  scoreFeatures,
  scoreFeaturesPatchCoreAsync,
} from '../../../src-main/engine/infer';
import { patchCoreHeadScores, patchCoreHeadScoresAsync } from '../../../src-main/engine/infer/patchcore-head';
import { clearSearchedScores } from '../../../src-main/engine/infer/patchcore-search-cache';
import { headMatMul, type MatMulFn } from '../../../src-main/engine/train/matmul-runtime';
import { trainFast, type FastTrainData } from '../../../src-main/engine/train';
import { normalFeatures, withDefect, type SyntheticSpec } from '../../../src-main/engine/train/synthetic';
import { resolveSettings } from '../../../src-main/engine/settings';
import type { ImageFeatures, TrainProgress, TrainSettings } from '../../../src-main/engine/types';
import { Rng } from '../../../src-main/engine/util/rng';
import type { DraState } from '../../../src-main/engine/heads/state';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const spec: SyntheticSpec = { side: 6, channels: 12 };
const SEEN = { from: 0, to: 3 };
const PSEUDO = { from: 3, to: 6 };

function makeData(seed: number, anomalies: number) {
  const rng = new Rng(seed);
  const normals = Array.from({ length: 24 }, () => normalFeatures(rng, spec));
  const data: FastTrainData = {
    normals,
    anomalies: Array.from({ length: anomalies }, () => withDefect(rng, normalFeatures(rng, spec), SEEN)),
    pseudo: normals.map((n) => [withDefect(rng, n, PSEUDO), withDefect(rng, n, PSEUDO)]),
  };
  const testNormals = Array.from({ length: 20 }, () => normalFeatures(rng, spec));
  const testSeen = Array.from({ length: 20 }, () => withDefect(rng, normalFeatures(rng, spec), SEEN));
  return { data, testNormals, testSeen };
}

const settings = (over: Partial<TrainSettings> = {}): TrainSettings =>
  resolveSettings({
    seed: 5,
    steps: 40,
    learningRate: 3e-3,
    batchNormals: 16,
    batchAnomalies: 8,
    residualReduce: 8,
    residualWidth: 8,
    normalityWidth: 16,
    knnHead: false,
    gaussianHead: false,
    ...over,
  });

const auc = (pos: number[], neg: number[]) =>
  aucRoc([...pos, ...neg], [...pos.map(() => 1), ...neg.map(() => 0)]);

describe('trainFast on synthetic features (bright-patch anomalies)', () => {
  const { data, testNormals, testSeen } = makeData(1, 4);
  let progress: TrainProgress[] = [];
  let scoresA: number[] = [];

  it('separates seen anomalies from normals, and the seen and pseudo heads respond', async () => {
    progress = [];
    const state = await trainFast(data, settings(), { onProgress: (p) => progress.push(p) });
    const sn = scoreFeatures(state, testNormals);
    const sa = scoreFeatures(state, testSeen);
    scoresA = [...sn, ...sa].map((s) => s.total);
    expect(
      auc(
        sa.map((s) => s.total),
        sn.map((s) => s.total),
      ),
    ).toBeGreaterThan(0.9);
    expect(
      auc(
        sa.map((s) => s.perHead.seen!),
        sn.map((s) => s.perHead.seen!),
      ),
    ).toBeGreaterThan(0.9);
    // The pseudo head was trained on another band: it must flag pseudo-like defects.
    const rng = new Rng(77);
    const testPseudo = testNormals.map((n) => withDefect(rng, n, PSEUDO));
    const sp = scoreFeatures(state, testPseudo);
    expect(
      auc(
        sp.map((s) => s.perHead.pseudo!),
        sn.map((s) => s.perHead.pseudo!),
      ),
    ).toBeGreaterThan(0.9);
    // Heatmap: the brightest cell of an anomaly's map lies inside its defect.
    const f = testSeen[0].levels[0];
    const hm = sa[0].heatmap;
    expect(hm.h).toBe(6);
    const argmax = hm.data.indexOf(Math.max(...hm.data));
    let bright = 0;
    for (let k = SEEN.from; k < SEEN.to; k++) bright += f.data[argmax * f.c + k];
    expect(bright).toBeGreaterThan(6); // 3 channels x strength 3, minus noise
    for (const s of sa) {
      const ph = s.perHead;
      expect(s.total).toBeCloseTo(ph.seen! + ph.pseudo! + ph.residual! - ph.normality! + ph.global!, 4);
    }
  });

  it('reports progress every step with per-head losses and an ETA, then the reference and calibration stages', () => {
    const train = progress.filter((p) => p.stage === 'train');
    expect(train).toHaveLength(40);
    expect(train.map((p) => p.step)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(Object.keys(train[0].losses!).sort()).toEqual(['normality', 'pseudo', 'residual', 'seen']);
    expect(train.every((p) => typeof p.etaSeconds === 'number' && p.etaSeconds >= 0)).toBe(true);
    expect(train[39].etaSeconds).toBe(0);
    const total = (p: TrainProgress) => Object.values(p.losses!).reduce((a, b) => a + b, 0);
    const first = train.slice(0, 5).reduce((a, p) => a + total(p), 0);
    const last = train.slice(-5).reduce((a, p) => a + total(p), 0);
    expect(last).toBeLessThan(first);
    expect(progress.some((p) => p.stage === 'reference')).toBe(true);
    expect(progress.some((p) => p.stage === 'calibrate')).toBe(true);
  });

  it('same seed and data give bit-identical scores; another seed gives other scores', async () => {
    const again = await trainFast(data, settings());
    const s = scoreFeatures(again, [...testNormals, ...testSeen]).map((x) => x.total);
    expect(s).toEqual(scoresA);
    const other = await trainFast(data, settings({ seed: 6 }));
    expect(scoreFeatures(other, testNormals).map((x) => x.total)).not.toEqual(scoresA.slice(0, 20));
  });

  it('stops with an AbortError when its signal fires', async () => {
    const ctl = new AbortController();
    let steps = 0;
    const run = trainFast(data, settings({ steps: 10_000 }), {
      signal: ctl.signal,
      onProgress: (p) => {
        if (p.stage === 'train') steps = p.step;
      },
    });
    setTimeout(() => ctl.abort(), 200);
    const t0 = Date.now();
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(steps).toBeGreaterThan(0);
    expect(steps).toBeLessThan(10_000);
  });

  it('an already-aborted signal trains nothing', async () => {
    const ctl = new AbortController();
    ctl.abort();
    let calls = 0;
    await expect(
      trainFast(data, settings(), { signal: ctl.signal, onProgress: () => calls++ }),
    ).rejects.toMatchObject({
      name: 'AbortError',
    });
    expect(calls).toBe(0);
  });
});

describe('seen and pseudo heads as per-patch MLPs (settings.patchHidden)', () => {
  it('learn the seen defect, keep each head on its own hidden units, and survive save/load', async () => {
    const { data, testNormals, testSeen } = makeData(3, 4);
    const state = await trainFast(data, settings({ patchHidden: 6 }));
    const p = state.weights.patch;
    expect(p.hidden).toBe(6);
    expect(p.w).toHaveLength(12 * 12); // [channels, 2 * hidden]
    // Block-diagonal output layer: seen reads units 0-5 only, pseudo units 6-11 only.
    for (let r = 0; r < 12; r++) {
      expect(p.out![r * 2 + (r < 6 ? 1 : 0)]).toBe(0);
      expect(p.out![r * 2 + (r < 6 ? 0 : 1)]).not.toBe(0);
    }
    const sn = scoreFeatures(state, testNormals);
    const sa = scoreFeatures(state, testSeen);
    expect(
      auc(
        sa.map((s) => s.perHead.seen!),
        sn.map((s) => s.perHead.seen!),
      ),
    ).toBeGreaterThan(0.9);

    const dir = await mkdtemp(path.join(os.tmpdir(), 'swan-mlp-'));
    try {
      const backbone = { id: 'mobilenet_v1_0.75', inputSize: 224, featureLayer: 'x', levels: 2 };
      await saveModel(dir, { state, backbone, trainingImageIds: ['a'] });
      const loaded = await loadModel(dir);
      releaseScoringTensors();
      expect(scoreFeatures(loaded.state, testSeen).map((s) => s.total)).toEqual(sa.map((s) => s.total));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('trainFast without labelled anomalies (unsupervised)', () => {
  it('skips the seen head and still ranks defects above normals with the kNN head', async () => {
    const { data, testNormals } = makeData(2, 0);
    const rng = new Rng(9);
    const unseen = testNormals.map((n) => withDefect(rng, n, { from: 6, to: 9 }, 4));
    const progress: TrainProgress[] = [];
    const state = await trainFast(data, settings({ knnHead: true, steps: 20 }), {
      onProgress: (p) => progress.push(p),
    });
    expect(state.hasSeen).toBe(false);
    const train = progress.filter((p) => p.stage === 'train');
    expect(train[0].losses!.seen).toBeUndefined();
    const sn = scoreFeatures(state, testNormals);
    const su = scoreFeatures(state, unseen);
    expect(sn[0].perHead.seen).toBeUndefined();
    expect(sn[0].perHead.knn).toBeDefined();
    expect(
      auc(
        su.map((s) => s.perHead.knn!),
        sn.map((s) => s.perHead.knn!),
      ),
    ).toBeGreaterThan(0.8);
  });
});

describe('resources', () => {
  it('training and scoring leave no tensors behind', async () => {
    const { data, testNormals } = makeData(4, 2);
    const s = settings({ steps: 3 });
    // The first run creates the small constant matrices that are kept for the process.
    await trainFast(data, s);
    releaseScoringTensors();
    const before = tf.memory().numTensors;
    const state = await trainFast(data, s);
    scoreFeatures(state, testNormals);
    releaseScoringTensors();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('bad input', () => {
  it('refuses mismatched feature shapes and empty data with an EngineError', async () => {
    const { data } = makeData(3, 1);
    const odd: ImageFeatures = normalFeatures(new Rng(1), { side: 5, channels: 12 });
    await expect(trainFast({ ...data, anomalies: [odd] }, settings())).rejects.toMatchObject({
      name: 'EngineError',
      message: expect.stringMatching(/shape mismatch at pyramid level 0/),
    });
    const nan = normalFeatures(new Rng(2), spec);
    nan.levels[1].data[5] = Number.NaN;
    await expect(trainFast({ ...data, anomalies: [nan] }, settings())).rejects.toThrow(
      /non-finite value \(NaN\) at pyramid level 1/,
    );
    await expect(trainFast({ normals: [], anomalies: [], pseudo: [] }, settings())).rejects.toMatchObject({
      name: 'EngineError',
    });
  });
});

/**
 * The extra head separates the test defects from the test normals, and adds its weight times
 * its z-score to the total (weight 0: nothing; weight 2: twice weight 1's part).
 */
function expectWeightedHead(
  state: DraState,
  head: 'global' | 'gaussian' | 'patchcore',
  normals: ImageFeatures[],
  defects: ImageFeatures[],
  minAuc: number,
) {
  const weighted = (feats: ImageFeatures[], w: number) =>
    scoreFeatures(
      state,
      feats,
      head === 'global'
        ? { globalWeight: w }
        : head === 'gaussian'
          ? { gaussianWeight: w }
          : { patchcoreWeight: w },
    );
  const sn = weighted(normals, 1);
  const sa = weighted(defects, 1);
  expect(
    auc(
      sa.map((s) => s.perHead[head]!),
      sn.map((s) => s.perHead[head]!),
    ),
  ).toBeGreaterThan(minAuc);
  const without = weighted(defects, 0);
  const doubled = weighted(defects, 2);
  sa.forEach((s, i) => {
    expect(s.total - without[i].total).toBeCloseTo(s.perHead[head]!, 5);
    expect(doubled[i].total - without[i].total).toBeCloseTo(2 * s.perHead[head]!, 5);
  });
}

/** Saves and loads the state: the extra head's part comes back equal and scores the same. */
async function expectSavedAndLoaded(
  state: DraState,
  head: 'global' | 'gaussian' | 'patchcore',
  test: ImageFeatures[],
) {
  const dir = await mkdtemp(path.join(os.tmpdir(), `swan-${head}-`));
  try {
    const backbone = { id: 'mobilenet_v1_0.75', inputSize: 224, featureLayer: 'x', levels: 2 };
    await saveModel(dir, { state, backbone, trainingImageIds: ['a'] });
    const loaded = await loadModel(dir);
    releaseScoringTensors();
    expect(loaded.state[head]).toEqual(state[head]);
    expect(scoreFeatures(loaded.state, test).map((s) => s.total)).toEqual(
      scoreFeatures(state, test).map((s) => s.total),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('global head (settings.globalHead)', () => {
  it('trains on the labelled defects, adds globalWeight times its z-score to the total, and survives save/load', async () => {
    const { data, testNormals, testSeen } = makeData(4, 4);
    const state = await trainFast(data, settings({ globalHead: true }));
    expect(state.global?.source).toBe('level0'); // synthetic features carry no pooled vector
    expect(state.calibration.global?.std).toBeGreaterThan(0);
    expectWeightedHead(state, 'global', testNormals, testSeen, 0.9);
    // Four labelled defects: the weight is twice globalWeight (sqrt 4), on the DRA sum's scale.
    expect(state.global?.defects).toBe(4);
    const cal = state.calibration;
    for (const s of scoreFeatures(state, testSeen, { globalWeight: 1 })) {
      const z = (s.raw!.global! - cal.global!.mean) / cal.global!.std;
      expect(s.perHead.global).toBeCloseTo(2 * cal.dra!.std * z, 5);
    }
    await expectSavedAndLoaded(state, 'global', testSeen);
  });

  it('is not trained without a labelled defect, nor when switched off', async () => {
    const none = await trainFast(makeData(2, 0).data, settings({ globalHead: true, steps: 5 }));
    expect(none.global).toBeUndefined();
    const off = await trainFast(makeData(2, 3).data, settings({ globalHead: false, steps: 5 }));
    expect(off.global).toBeUndefined();
    expect(scoreFeatures(off, makeData(2, 3).testSeen)[0].perHead.global).toBeUndefined();
  });
});

describe('Gaussian head (settings.gaussianHead)', () => {
  it('is fitted on the training normals, adds gaussianWeight times its z-score to the total, and survives save/load', async () => {
    // 24 normals, 12 channels: enough normals per channel for the head.
    const { data, testNormals, testSeen } = makeData(6, 3);
    const state = await trainFast(data, settings({ gaussianHead: true, globalHead: false }));
    expect(state.gaussian?.dim).toBe(12);
    expect(state.gaussian?.count).toBe(24);
    expect(state.calibration.gaussian?.std).toBeGreaterThan(0);
    expectWeightedHead(state, 'gaussian', testNormals, testSeen, 0.8);
    expect(scoreFeatures(state, testSeen).every((s) => s.raw!.gaussian! > 0)).toBe(true);

    await expectSavedAndLoaded(state, 'gaussian', testSeen);
  });

  it('is not fitted with fewer normals than channels, nor when switched off', async () => {
    const few = makeData(2, 3).data;
    const small = await trainFast(
      { ...few, normals: few.normals.slice(0, 11), pseudo: few.pseudo.slice(0, 11) },
      settings({ gaussianHead: true, steps: 5 }),
    );
    expect(small.gaussian).toBeUndefined();
    const off = await trainFast(few, settings({ gaussianHead: false, steps: 5 }));
    expect(off.gaussian).toBeUndefined();
    expect(scoreFeatures(off, makeData(2, 3).testSeen)[0].perHead.gaussian).toBeUndefined();
  });
});

/** A copy of the features with a finer map as the backbone tap `name` (2x the level-0 grid). */
function withTap(f: ImageFeatures, name: string): ImageFeatures {
  const l0 = f.levels[0];
  const h = 2 * l0.h;
  const w = 2 * l0.w;
  const data = new Float32Array(h * w * l0.c);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      data.set(
        l0.data.subarray(((y >> 1) * l0.w + (x >> 1)) * l0.c, ((y >> 1) * l0.w + (x >> 1) + 1) * l0.c),
        (y * w + x) * l0.c,
      );
  return { ...f, taps: { [name]: { h, w, c: l0.c, data } } };
}

describe('PatchCore head (settings.patchcoreHead)', () => {
  const off = { gaussianHead: false, globalHead: false, knnHead: false };

  it('is fitted on the training normals, adds patchcoreWeight times its z-score and its map, and survives save/load', async () => {
    const { data, testNormals, testSeen } = makeData(7, 3);
    const state = await trainFast(data, settings({ ...off, patchcoreHead: true }));
    expect(state.patchcore?.taps).toEqual([]);
    expect(state.patchcore!.count).toBeGreaterThan(0);
    expect(state.calibration.patchcore?.std).toBeGreaterThan(0);
    expectWeightedHead(state, 'patchcore', testNormals, testSeen, 0.8);
    // The heatmap carries the head's map: weight 0 and weight 1 differ where the defect is.
    const [a] = scoreFeatures(state, testSeen.slice(0, 1), { patchcoreWeight: 1 });
    const [b] = scoreFeatures(state, testSeen.slice(0, 1), { patchcoreWeight: 0 });
    expect(a.heatmap.data.some((v, j) => Math.abs(v - b.heatmap.data[j]) > 1e-6)).toBe(true);
    await expectSavedAndLoaded(state, 'patchcore', testSeen);
  });

  it('scores a training normal without its own patches (leave-one-out), not at distance 0', async () => {
    const { data, testNormals } = makeData(8, 0);
    const state = await trainFast(data, settings({ ...off, patchcoreHead: true, steps: 5 }));
    const train = scoreFeatures(state, data.normals).map((s) => s.raw!.patchcore!);
    const test = scoreFeatures(state, testNormals).map((s) => s.raw!.patchcore!);
    expect(Math.min(...train)).toBeGreaterThan(0.5 * Math.min(...test));
    // Its calibration is those leave-one-out scores: training normals average z ~ 0.
    const cal = state.calibration.patchcore!;
    const meanTrain = train.reduce((x, y) => x + y, 0) / train.length;
    expect(Math.abs(meanTrain - cal.mean)).toBeLessThan(1e-4 * Math.max(1, cal.mean));
  });

  it('scores on GEMM (patchCoreHeadScoresAsync) as in the loops, leave-one-out and exclusions honoured', async () => {
    const { data, testNormals, testSeen } = makeData(10, 3);
    const state = await trainFast(data, settings({ ...off, patchcoreHead: true, steps: 5 }));
    const pc = state.patchcore!;
    // Training normals k = 0, 1, 2 by their fingerprints (looked up) or told (ex: 0, another, 2);
    // training normal k0 with none of its patches left out (ex: -1); unseen images.
    const k0 = pc.source[0]; // it has a patch in the bank
    const feats = [
      ...data.normals.slice(0, 3),
      data.normals[k0],
      ...testNormals.slice(0, 3),
      ...testSeen.slice(0, 3),
    ];
    const exclude = feats.map((_, i) => (i === 1 ? (k0 === 7 ? 8 : 7) : i < 3 ? i : -1));
    const ppi = pc.h * pc.w;
    const nearest = (s: { maps: Float32Array }, i: number) =>
      Math.min(...s.maps.subarray(i * ppi, (i + 1) * ppi));
    for (const runtime of ['tfjs', 'onnxruntime'] as const) {
      const { matMul } = await headMatMul(runtime);
      // Each search searched, not looked up from the one before (patchcore-search-cache.ts).
      const fresh = <T>(f: () => T): T => {
        clearSearchedScores();
        return f();
      };
      const loo = await fresh(() => patchCoreHeadScoresAsync(pc, feats, undefined, matMul));
      const told = await fresh(() => patchCoreHeadScoresAsync(pc, feats, exclude, matMul));
      for (const [got, want] of [
        [loo, fresh(() => patchCoreHeadScores(pc, feats))],
        [told, fresh(() => patchCoreHeadScores(pc, feats, exclude))],
      ]) {
        // Distances from |q|^2 + |b|^2 - 2 q.b: rounding of the squares, not of the distances.
        for (let i = 0; i < want.maps.length; i++)
          expect(Math.abs(got.maps[i] ** 2 - want.maps[i] ** 2)).toBeLessThan(1e-3);
        for (let i = 0; i < want.score.length; i++)
          expect(Math.abs(got.score[i] ** 2 - want.score[i] ** 2)).toBeLessThan(1e-3);
      }
      // Known by its fingerprint, a training normal matches none of its own patches ...
      for (let i = 0; i < 4; i++) expect(nearest(loo, i)).toBeGreaterThan(1e-2);
      // ... and so when told its own index; told nothing, k0 finds its bank patch at distance 0.
      expect(told.score[0]).toBeCloseTo(loo.score[0], 4);
      expect(nearest(told, 3)).toBeLessThan(1e-2);
      expect(told.score[3]).toBeLessThanOrEqual(loo.score[3] + 1e-4);
      // Told another image, image 1's own patches are matched: never farther than leave-one-out.
      expect(told.score[1]).toBeLessThanOrEqual(loo.score[1] + 1e-4);
    }
    // The whole score: the other heads bit-identical, the PatchCore part to rounding.
    clearSearchedScores();
    const a = scoreFeatures(state, feats);
    clearSearchedScores();
    const b = await scoreFeaturesPatchCoreAsync(state, feats);
    a.forEach((x, i) => {
      expect(b[i].perHead.seen).toBe(x.perHead.seen);
      expect(b[i].perHead.patchcore!).toBeCloseTo(x.perHead.patchcore!, 3);
    });
    const without = await trainFast(data, settings({ ...off, patchcoreHead: false, steps: 5 }));
    expect((await scoreFeaturesPatchCoreAsync(without, feats)).map((x) => x.total)).toEqual(
      scoreFeatures(without, feats).map((x) => x.total),
    );
  });

  it('looks up what the same bank searched before (a loaded copy of the model too), and searches for another bank', async () => {
    const { data, testNormals, testSeen } = makeData(11, 3);
    clearSearchedScores();
    const state = await trainFast(data, settings({ ...off, patchcoreHead: true, steps: 5 }));
    const feats = [...testNormals.slice(0, 3), ...testSeen.slice(0, 3), data.normals[0]];
    const { matMul: real } = await headMatMul();
    let rows = 0;
    const counting: MatMulFn = (a, m, ...rest) => {
      rows += m;
      return real(a, m, ...rest);
    };
    const first = await patchCoreHeadScoresAsync(state.patchcore!, feats, undefined, counting);
    const ppi = state.patchcore!.h * state.patchcore!.w;
    // Six unseen images searched; the training normal is its leave-one-out score, looked up.
    expect(rows).toBe(6 * ppi);
    // The same bank in another object (as a scorer loads it from the model file): nothing searched.
    const copy = { ...state.patchcore!, bank: state.patchcore!.bank.slice() };
    const again = await patchCoreHeadScoresAsync(copy, feats.slice(0, 6), undefined, counting);
    expect(rows).toBe(6 * ppi);
    expect([...again.score]).toEqual([...first.score.subarray(0, 6)]);
    expect([...again.maps]).toEqual([...first.maps.subarray(0, 6 * ppi)]);
    // The copy's training normals too: their leave-one-out scores of the fit, by content.
    const fingerprints = state.patchcore!.fingerprints.slice();
    const copyNormals = () =>
      patchCoreHeadScoresAsync({ ...copy, fingerprints }, data.normals.slice(0, 4), undefined, counting);
    const loo = await copyNormals();
    expect(rows).toBe(6 * ppi);
    expect(loo.score[0]).toBe(first.score[6]);
    // Forgotten (another process), they are searched again, to the same scores.
    clearSearchedScores();
    const searched = await copyNormals();
    expect(rows).toBe(10 * ppi);
    searched.score.forEach((x, i) => expect(x).toBeCloseTo(loo.score[i], 4));
    // Excluding a training image's patches is another search: not looked up.
    await patchCoreHeadScoresAsync(state.patchcore!, feats.slice(0, 1), [0], counting);
    expect(rows).toBe(11 * ppi);
    // Another bank (another seed's coreset) searches again, and scores otherwise.
    const other = await trainFast(data, settings({ ...off, patchcoreHead: true, steps: 5, seed: 3 }));
    expect([...other.patchcore!.bank]).not.toEqual([...state.patchcore!.bank]);
    await patchCoreHeadScoresAsync(other.patchcore!, feats.slice(0, 6), undefined, counting);
    expect(rows).toBe(17 * ppi);
  });

  it('reads the backbone taps it was fitted with, and refuses features without them', async () => {
    const { data, testSeen } = makeData(9, 2);
    const tapped = {
      ...data,
      normals: data.normals.map((f) => withTap(f, 'fine')),
      pseudo: data.pseudo.map((p) => p.map((f) => withTap(f, 'fine'))),
      anomalies: data.anomalies.map((f) => withTap(f, 'fine')),
    };
    const state = await trainFast(tapped, settings({ ...off, patchcoreHead: true, steps: 5 }));
    expect(state.patchcore?.taps).toEqual(['fine']);
    expect(state.patchcore!.h).toBe(12); // the tap's finer grid
    expect(
      scoreFeatures(
        state,
        testSeen.map((f) => withTap(f, 'fine')),
      )[0].perHead.patchcore,
    ).toBeDefined();
    expect(() => scoreFeatures(state, testSeen)).toThrow(/needs the backbone layer fine/);
  });

  it('is not fitted when switched off', async () => {
    const state = await trainFast(makeData(2, 3).data, settings({ ...off, patchcoreHead: false, steps: 5 }));
    expect(state.patchcore).toBeUndefined();
    expect(scoreFeatures(state, makeData(2, 3).testSeen)[0].perHead.patchcore).toBeUndefined();
  });
});
