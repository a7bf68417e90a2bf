import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { pooledVector, scoreFeatures } from '../../../src-main/engine/infer';
import { appMetrics } from '../../../src-main/models/held-out';
import { loadModel, saveModel } from '../../../src-main/engine/model-file';
import { resolveSettings } from '../../../src-main/engine/settings';
import { trainFast } from '../../../src-main/engine/train';
import { normalFeatures, withDefect } from '../../../src-main/engine/train/synthetic';
import type { ImageFeatures, TrainProgress, TrainSettings } from '../../../src-main/engine/types';
import { Rng } from '../../../src-main/engine/util/rng';
import {
  crossValidate,
  manifestValidation,
  planFolds,
  validationMetrics,
  type FoldInfo,
  type ValidationAnomaly,
  type ValidationNormal,
} from '../../../src-main/engine/validate';
import { chooseCombination, type SelectionEvidence } from '../../../src-main/engine/select';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const spec = { side: 4, channels: 6 };
const SEEN = { from: 0, to: 2 };
const PSEUDO = { from: 2, to: 4 };

function makeSet(seed: number, nGood: number, nDefect: number) {
  const rng = new Rng(seed);
  const normals: ValidationNormal[] = Array.from({ length: nGood }, (_, i) => {
    const features = normalFeatures(rng, spec);
    return { id: `g${i}`, features, pseudo: [withDefect(rng, features, PSEUDO)] };
  });
  const anomalies: ValidationAnomaly[] = Array.from({ length: nDefect }, (_, i) => ({
    id: `d${i}`,
    cls: i % 2 ? 'crack' : 'scratch',
    features: withDefect(rng, normalFeatures(rng, spec), SEEN),
  }));
  return { normals, anomalies };
}

const settings = (over: Partial<TrainSettings> = {}): TrainSettings =>
  resolveSettings({
    seed: 7,
    steps: 6,
    batchNormals: 4,
    batchAnomalies: 2,
    residualReduce: 3,
    residualWidth: 3,
    normalityWidth: 4,
    knnHead: true,
    ...over,
  });

/** The pooled vectors of a kNN bank, as strings (exact feature identity). */
function bankKeys(bank: Float32Array, dim: number, count: number): Set<string> {
  const out = new Set<string>();
  for (let j = 0; j < count; j++) out.add(Array.from(bank.subarray(j * dim, (j + 1) * dim)).join(','));
  return out;
}
const key = (f: ImageFeatures) => Array.from(pooledVector(f.levels[0])).join(',');

describe('planFolds', () => {
  it('is stratified and disjoint, and spreads the defect classes', () => {
    const classes = ['a', 'a', 'a', 'b', 'b', 'b', 'c'];
    const p = planFolds(20, classes, 3, 1);
    expect(p.folds).toBe(3);
    const goodPerFold = [0, 1, 2].map((f) => p.normalFold.filter((x) => x === f).length);
    const defectPerFold = [0, 1, 2].map((f) => p.anomalyFold.filter((x) => x === f).length);
    expect(goodPerFold.sort()).toEqual([6, 7, 7]);
    expect(Math.max(...defectPerFold) - Math.min(...defectPerFold)).toBeLessThanOrEqual(1);
    // Every fold gets one 'a' and one 'b'.
    for (const cls of ['a', 'b']) {
      const folds = classes.flatMap((c, i) => (c === cls ? [p.anomalyFold[i]] : []));
      expect(new Set(folds).size).toBe(3);
    }
    // Same seed, same plan; another seed, another plan.
    expect(planFolds(20, classes, 3, 1)).toEqual(p);
    expect(planFolds(20, classes, 3, 2).normalFold).not.toEqual(p.normalFold);
  });

  it('lowers K until every fold keeps 2 good images to train on, and says why none is possible', () => {
    expect(planFolds(4, [], 5, 0)).toMatchObject({ folds: 4 });
    expect(planFolds(4, [], 5, 0).notes[0]).toMatch(/4 folds instead of 5/);
    // 3 good images in 2 folds would leave 1 to train on.
    expect(planFolds(3, [], 3, 0).folds).toBe(3);
    expect(planFolds(3, [], 2, 0).folds).toBe(0);
    const none = planFolds(2, ['x'], 3, 0);
    expect(none.folds).toBe(0);
    expect(none.notes[0]).toMatch(/needs at least 2 folds/);
  });
});

describe('crossValidate', () => {
  it('scores every labelled image exactly once, out of fold; no fold trains on or banks its held-out images', async () => {
    const { normals, anomalies } = makeSet(1, 9, 4);
    const folds: FoldInfo[] = [];
    const progress: TrainProgress[] = [];
    // Unlabelled images: every fold model scores them too (their scale against the final model's).
    const reference = makeSet(11, 3, 2);
    const refs = [...reference.normals, ...reference.anomalies].map((x) => ({
      id: `u-${x.id}`,
      features: x.features,
    }));
    const v = await crossValidate(normals, anomalies, settings(), {
      folds: 3,
      onFold: (f) => folds.push(f),
      onProgress: (p) => progress.push(p),
      reference: refs,
    });
    expect(v.reference?.ids).toEqual(refs.map((r) => r.id));
    expect(v.reference?.folds).toHaveLength(3);
    folds.forEach((f) => {
      const own = scoreFeatures(
        f.state,
        refs.map((r) => r.features),
      ).map((x) => x.total);
      v.reference!.folds[f.fold].forEach((x, j) => expect(x).toBeCloseTo(own[j], 4));
    });
    expect(v.folds).toBe(3);
    expect(v.method).toBe('k-fold cross-validation');
    expect([v.nGood, v.nDefect]).toEqual([9, 4]);
    const ids = [...normals, ...anomalies].map((x) => x.id);
    expect(Object.keys(v.scores).sort()).toEqual([...ids].sort());
    expect(folds).toHaveLength(3);
    // Held-out sets partition the labelled images.
    expect(folds.flatMap((f) => f.heldOutIds).sort()).toEqual([...ids].sort());
    for (const f of folds) {
      const trainIds = new Set([...f.trainNormalIds, ...f.trainAnomalyIds]);
      expect(f.heldOutIds.filter((id) => trainIds.has(id))).toEqual([]);
      expect(trainIds.size + f.heldOutIds.length).toBe(ids.length);
      for (const id of f.heldOutIds) expect(v.scores[id].fold).toBe(f.fold);
      // The kNN bank is exactly the fold's training normals: no held-out image in it.
      const knn = f.state.knn!;
      const bank = bankKeys(knn.bank, knn.dim, knn.count);
      expect(knn.count).toBe(f.trainNormalIds.length);
      // So is the Gaussian head's: fitted on the fold's training normals alone.
      expect(f.state.gaussian?.count).toBe(f.trainNormalIds.length);
      for (const n of normals) expect(bank.has(key(n.features))).toBe(f.trainNormalIds.includes(n.id));
      // The reference map is the mean of the training normals only.
      const expected = new Float32Array(f.state.reference[0].data.length);
      const train = normals.filter((n) => f.trainNormalIds.includes(n.id));
      for (const n of train) n.features.levels[0].data.forEach((x, i) => (expected[i] += x / train.length));
      f.state.reference[0].data.forEach((x, i) => expect(x).toBeCloseTo(expected[i], 5));
    }
    expect(v.aucRoc).not.toBeNull();
    expect(v.aucRoc!).toBeGreaterThanOrEqual(0);
    expect(v.aucRoc!).toBeLessThanOrEqual(1);
    expect(Object.keys(v.perHeadAucRoc).sort()).toEqual([
      'gaussian',
      'global',
      'knn',
      'normality',
      'pseudo',
      'residual',
      'seen',
    ]);
    expect(progress.filter((p) => p.stage === 'validate').map((p) => [p.step, p.total])).toEqual([
      [0, 3],
      [1, 3],
      [2, 3],
      [3, 3],
    ]);
    const m = validationMetrics(v);
    expect(m).toMatchObject({ folds: 3, n_good: 9, n_defect: 4, auc_roc: v.aucRoc, ap: v.ap });
    expect(m.auc_roc_seen).toBe(v.perHeadAucRoc.seen);
  });

  it('each held-out score is the score of a model trained without it (re-trained independently)', async () => {
    const { normals, anomalies } = makeSet(2, 6, 2);
    const folds: FoldInfo[] = [];
    const s = settings();
    const v = await crossValidate(normals, anomalies, s, { folds: 2, onFold: (f) => folds.push(f) });
    const f = folds[0];
    // Rebuild fold 0's training set from the ids alone and train it the way the real model trains.
    const trainN = normals.filter((n) => f.trainNormalIds.includes(n.id));
    const trainA = anomalies.filter((a) => f.trainAnomalyIds.includes(a.id));
    const again = await trainFast(
      {
        normals: trainN.map((n) => n.features),
        anomalies: trainA.map((a) => a.features),
        pseudo: trainN.map((n) => n.pseudo),
      },
      { ...s, seed: f.state.settings.seed },
    );
    expect(Array.from(again.weights.patch.w)).toEqual(Array.from(f.state.weights.patch.w));
    expect(f.state.settings.seed).not.toBe(s.seed);
    expect(folds[1].state.settings.seed).not.toBe(f.state.settings.seed);
    expect(Object.values(v.scores).every((x) => Number.isFinite(x.total))).toBe(true);
  });

  it('same seed, identical results; another seed, other folds', async () => {
    const { normals, anomalies } = makeSet(3, 8, 3);
    const a = await crossValidate(normals, anomalies, settings(), { folds: 3 });
    const b = await crossValidate(normals, anomalies, settings(), { folds: 3 });
    const strip = (r: typeof a) => ({ ...r, seconds: 0 });
    expect(strip(b)).toEqual(strip(a));
    const c = await crossValidate(normals, anomalies, settings({ seed: 8 }), { folds: 3 });
    const foldOf = (r: typeof a) => ids.map((id) => r.scores[id].fold);
    const ids = Object.keys(a.scores).sort();
    expect(foldOf(c)).not.toEqual(foldOf(a));
  });

  it('one defect: the fold holding it out trains on pseudo anomalies only, and says so', async () => {
    const { normals, anomalies } = makeSet(4, 6, 1);
    const folds: FoldInfo[] = [];
    const v = await crossValidate(normals, anomalies, settings(), { folds: 3, onFold: (f) => folds.push(f) });
    const holding = folds.find((f) => f.heldOutIds.includes('d0'))!;
    expect(holding.trainAnomalyIds).toEqual([]);
    expect(holding.state.hasSeen).toBe(false);
    expect(v.scores.d0.perHead.seen).toBeUndefined();
    expect(v.aucRoc).not.toBeNull();
    expect(v.notes.join('\n')).toMatch(/held out every labelled defect/);
    // The seen head never scored the defect out of fold: its AUC cannot be computed.
    expect(v.perHeadAucRoc.seen).toBeUndefined();
    expect(v.notes.join('\n')).toMatch(/seen head AUC-ROC not computed/);
  });

  it('no defect: out-of-fold good scores, and metrics missing with the reason instead of numbers', async () => {
    const { normals } = makeSet(5, 6, 0);
    const v = await crossValidate(normals, [], settings(), { folds: 3 });
    expect(Object.keys(v.scores)).toHaveLength(6);
    expect(v.aucRoc).toBeNull();
    expect(v.ap).toBeNull();
    expect(v.notes.join('\n')).toMatch(/AUC-ROC not computed: needs out-of-fold scores of both/);
    expect(validationMetrics(v)).toEqual({ folds: 3, n_good: 6, n_defect: 0 });
  });

  it('stops on abort', async () => {
    const { normals, anomalies } = makeSet(6, 6, 2);
    const ctl = new AbortController();
    const p = crossValidate(normals, anomalies, settings(), {
      folds: 3,
      signal: ctl.signal,
      onProgress: (x) => {
        if (x.stage === 'validate' && x.step === 1) ctl.abort();
      },
    });
    await expect(p).rejects.toThrow(/abort|cancel/i);
  });

  it('onEvidence sees the evidence the weight is chosen on, and choosing on it again gives the same weight', async () => {
    const { normals, anomalies } = makeSet(9, 8, 4);
    let seen: SelectionEvidence | undefined;
    const v = await crossValidate(normals, anomalies, settings(), {
      folds: 2,
      select: true,
      onEvidence: (ev) => (seen = ev),
    });
    expect(v.combination).toBeDefined();
    expect(seen).toBeDefined();
    // Every held-out labelled image is in the seen kinds once, with its label.
    expect(seen!.seen.filter((p) => p.label === 1)).toHaveLength(anomalies.length);
    expect(seen!.seen.filter((p) => p.label === 0)).toHaveLength(normals.length);
    expect(seen!.unseen.map((u) => u.kind)).toContain('pseudo');
    expect(chooseCombination(seen!)).toEqual(v.combination);
  });

  it('the manifest round-trip carries the metrics and the out-of-fold scores; older manifests still load', async () => {
    const { normals, anomalies } = makeSet(7, 6, 2);
    const s = settings();
    // App image ids are numbers.
    const refs = makeSet(8, 2, 1).normals.map((n, k) => ({ id: String(100 + k), features: n.features }));
    const v = await crossValidate(normals, anomalies, s, { folds: 2, select: true, reference: refs });
    const state = await trainFast(
      {
        normals: normals.map((n) => n.features),
        anomalies: anomalies.map((a) => a.features),
        pseudo: normals.map((n) => n.pseudo),
      },
      s,
    );
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'swan-validate-'));
    try {
      const backbone = { id: 'mobilenet_v1_0.75', inputSize: 224, featureLayer: 'x', levels: 2 };
      const validation = manifestValidation(v);
      const dir = path.join(tmp, 'm');
      await saveModel(dir, {
        state,
        backbone,
        trainingImageIds: Object.keys(v.scores),
        metrics: validationMetrics(v),
        validation,
      });
      const loaded = await loadModel(dir);
      expect(loaded.manifest.metrics).toEqual(validationMetrics(v));
      expect(loaded.manifest.metrics.auc_roc).toBe(v.aucRoc);
      expect(loaded.manifest.validation).toEqual(validation);
      // Which fold held each image out, and every fold's scores of the unlabelled images, under
      // the chosen weight: what the app maps the out-of-fold evidence with.
      expect(validation.reference).toEqual(v.reference);
      expect(v.reference!.folds.map((f) => f.length)).toEqual([2, 2]);
      for (const [id, o] of Object.entries(validation.outOfFold)) expect(o.fold).toBe(v.scores[id].fold);
      const app = appMetrics(loaded.manifest)!;
      expect(app.reference_scores).toEqual({ ids: [100, 101], folds: v.reference!.folds });
      // Re-saving a loaded model keeps them.
      await saveModel(path.join(tmp, 'm2'), loaded);
      expect((await loadModel(path.join(tmp, 'm2'))).manifest.validation).toEqual(validation);
      // A manifest written before validation existed (no field) loads, without one.
      const old = path.join(tmp, 'old');
      await saveModel(old, { state, backbone, trainingImageIds: [] });
      const raw = JSON.parse(await fs.readFile(path.join(old, 'manifest.json'), 'utf8')) as Record<
        string,
        unknown
      >;
      expect('validation' in raw).toBe(false);
      expect((await loadModel(old)).manifest.validation).toBeUndefined();
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  });
});
