import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { trainChosen } from '../../../src-main/engine/choose';
import { scoreFeatures } from '../../../src-main/engine/infer';
import { patchCoreHeadScoresAsync } from '../../../src-main/engine/infer/patchcore-head';
import { clearSearchedScores } from '../../../src-main/engine/infer/patchcore-search-cache';
import {
  CANDIDATE_WEIGHTS,
  chooseCombination,
  PATCHCORE_EXTRA_WEIGHT,
  splitParts,
  type PartScore,
} from '../../../src-main/engine/select';
import { aucRoc } from '../../../src-main/engine/metrics';
import { resolveSettings } from '../../../src-main/engine/settings';
import { normalFeatures, withDefect } from '../../../src-main/engine/train/synthetic';
import { Rng } from '../../../src-main/engine/util/rng';
import {
  crossValidate,
  type StandInInfo,
  type ValidationAnomaly,
  type ValidationNormal,
} from '../../../src-main/engine/validate';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/**
 * Scores whose unsupervised part separates defects by `unsupShift` standard deviations and
 * whose supervised part by `supShift`, each with unit noise.
 */
function parts(
  seed: number,
  nGood: number,
  nDefect: number,
  supShift: number,
  unsupShift: number,
): PartScore[] {
  const rng = new Rng(seed);
  const gauss = () => {
    const u = Math.max(1e-12, rng.next());
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
  };
  return [
    ...Array.from({ length: nGood }, () => ({
      label: 0 as const,
      supervised: gauss(),
      unsupervised: gauss(),
    })),
    ...Array.from({ length: nDefect }, () => ({
      label: 1 as const,
      supervised: supShift + gauss(),
      unsupervised: unsupShift + gauss(),
    })),
  ];
}

/** parts() with a PatchCore contribution that separates defects by `pcShift` standard deviations. */
function partsWithPc(
  seed: number,
  nGood: number,
  nDefect: number,
  supShift: number,
  unsupShift: number,
  pcShift: number,
) {
  const rng = new Rng(seed + 1000);
  const gauss = () => {
    const u = Math.max(1e-12, rng.next());
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
  };
  return parts(seed, nGood, nDefect, supShift, unsupShift).map((p) => ({
    ...p,
    patchcore: (p.label ? pcShift : 0) + gauss(),
  }));
}

/** The same scores without the PatchCore head's part: what a model without the head would give. */
const strip = (ps: PartScore[]) => ps.map(({ patchcore: _pc, ...p }) => p);

describe('chooseCombination with the PatchCore head', () => {
  it('counts the head as set on the labelled kinds, judges the pseudo stand-ins without it, tries one more weight', () => {
    // The head finds the pasted patches (pcShift 3) and the supervised part barely (0.2): with
    // the head in the guard's reference every weight would drown it and fail; judged without
    // it, the choice is the one made without the head.
    const seen = partsWithPc(1, 200, 40, 3, 0, 0);
    const pseudo = partsWithPc(2, 200, 100, 0.2, 0, 3);
    const withPc = chooseCombination({ seen, unseen: [{ kind: 'pseudo', scores: pseudo }] });
    const without = chooseCombination({
      seen: strip(seen),
      unseen: [{ kind: 'pseudo', scores: strip(pseudo) }],
    });
    expect(withPc.patchcoreScale).toBeUndefined();
    expect(withPc.candidates.every((x) => x.patchcoreScale === undefined)).toBe(true);
    expect(withPc.candidates.map((x) => x.weight)).toEqual([...CANDIDATE_WEIGHTS, PATCHCORE_EXTRA_WEIGHT]);
    expect(without.candidates.map((x) => x.weight)).toEqual([...CANDIDATE_WEIGHTS]);
    expect(withPc.candidates.every((x) => x.passesGuard)).toBe(true);
    expect(withPc.supervisedWeight).toBeGreaterThanOrEqual(without.supervisedWeight);
    const w0 = withPc.candidates.find((x) => x.weight === 0)!;
    const auc = (ps: PartScore[], f: (p: PartScore) => number) =>
      aucRoc(
        ps.map(f),
        ps.map((p) => p.label),
      );
    // The pseudo stand-in's reference is the unsupervised part without the head ...
    expect(w0.unseenAuc.pseudo).toBeCloseTo(
      auc(pseudo, (p) => p.unsupervised),
      10,
    );
    // ... the labelled kinds' is the unsupervised part with it.
    expect(w0.seenAuc).toBeCloseTo(
      auc(seen, (p) => p.unsupervised + p.patchcore!),
      10,
    );
  });

  it('the labelled kinds and a class left out still see the head: it can hold the weight down', () => {
    // A class left out that only the head finds: weights that drown it fail the guard.
    const seen = partsWithPc(3, 200, 40, 3, 0, 0);
    const loco = partsWithPc(4, 200, 100, 0.2, 0, 3);
    const c = chooseCombination({ seen, unseen: [{ kind: 'leave-one-class-out', scores: loco }] });
    const without = chooseCombination({
      seen: strip(seen),
      unseen: [{ kind: 'leave-one-class-out', scores: strip(loco) }],
    });
    expect(c.candidates.some((x) => !x.passesGuard)).toBe(true);
    expect(c.supervisedWeight).toBeLessThan(without.supervisedWeight);
  });

  it('one labelled defect: the head stays in, the fixed weight is one doubling more (2, not 1)', () => {
    // The supervised part finds the pseudo anomalies: every weight passes the guard, so the
    // fixed weight is what is taken.
    const normals = partsWithPc(5, 60, 0, 0, 0, 0);
    const pseudo = [{ kind: 'pseudo' as const, scores: partsWithPc(6, 100, 100, 2, 1, 3) }];
    const defect = { label: 1 as const, supervised: 0, unsupervised: 0, patchcore: 6 };
    const one = chooseCombination({ seen: [...normals, defect], unseen: pseudo });
    expect(one.patchcoreScale).toBeUndefined();
    expect(one.supervisedWeight).toBe(2);
    const without = chooseCombination({
      seen: strip([...normals, defect]),
      unseen: pseudo.map((u) => ({ ...u, scores: strip(u.scores) })),
    });
    expect(without.supervisedWeight).toBe(1);
  });
});

describe('chooseCombination', () => {
  it('weighs the supervised heads in when they find the labelled kinds and do not cost the stand-ins', () => {
    const c = chooseCombination({
      seen: parts(1, 200, 40, 4, 1),
      unseen: [{ kind: 'pseudo', scores: parts(2, 200, 100, 2, 1) }],
    });
    expect(c.supervisedWeight).toBeGreaterThan(0);
    expect(c.candidates.every((x) => x.passesGuard)).toBe(true);
  });

  it('the guard: leans on the unsupervised heads when the supervised ones rank an unseen kind lower', () => {
    const seen = parts(1, 200, 40, 4, 1);
    // Stand-ins the supervised heads know nothing about: their part is noise there.
    const c = chooseCombination({
      seen,
      unseen: [{ kind: 'leave-one-class-out', scores: parts(3, 200, 100, 0, 2) }],
    });
    expect(c.supervisedWeight).toBe(0);
    expect(c.candidates.filter((x) => x.weight > 0).every((x) => !x.passesGuard)).toBe(true);
    // Without that evidence the same seen kinds would have weighed them in.
    expect(chooseCombination({ seen, unseen: [] }).supervisedWeight).toBeGreaterThan(0);
  });

  it('one labelled defect: no weight above the fixed one, and the guard can take it to 0', () => {
    const seen = parts(4, 50, 1, 10, 0);
    const c = chooseCombination({ seen, unseen: [{ kind: 'pseudo', scores: parts(2, 200, 100, 2, 1) }] });
    expect(c.supervisedWeight).toBe(1);
    expect(c.nDefect).toBe(1);
    expect(c.reason).toMatch(/no out-of-fold evidence on the labelled kinds/);
    const guarded = chooseCombination({
      seen,
      unseen: [{ kind: 'pseudo', scores: parts(3, 200, 100, 0, 2) }],
    });
    expect(guarded.supervisedWeight).toBe(0);
  });

  it('one labelled class: leave-labels-out and leave-pseudo-out lower the weight the pseudo anomalies alone let through, by the mean, not the guard', () => {
    // The supervised heads find the labelled kind and the pseudo anomalies (they trained on both),
    // and add only noise on kinds they never saw.
    const seen = parts(21, 200, 40, 3, 1);
    const pseudo = { kind: 'pseudo' as const, scores: parts(22, 200, 100, 2, 1) };
    const noLabels = { kind: 'leave-labels-out' as const, scores: parts(23, 200, 10, 0, 2) };
    const noPseudo = { kind: 'leave-pseudo-out' as const, scores: parts(24, 200, 100, 0, 1.5) };
    const before = chooseCombination({ seen, unseen: [pseudo] });
    expect(before.supervisedWeight).toBeGreaterThanOrEqual(2);
    const c = chooseCombination({ seen, unseen: [pseudo, noLabels, noPseudo] });
    expect(c.supervisedWeight).toBeLessThan(before.supervisedWeight);
    expect(c.candidates.every((x) => x.passesGuard)).toBe(true);
    for (const k of ['leave-labels-out', 'leave-pseudo-out'] as const)
      expect(c.candidates.find((x) => x.weight === 4)!.unseenAuc[k]).toBeLessThan(
        c.candidates.find((x) => x.weight === 0)!.unseenAuc[k]!,
      );
    // Two or more classes: leave-one-class-out's model has every head, and guards.
    const guarded = chooseCombination({
      seen,
      unseen: [pseudo, { ...noLabels, kind: 'leave-one-class-out' }],
    });
    expect(guarded.candidates.filter((x) => x.weight === 4).every((x) => !x.passesGuard)).toBe(true);
  });

  it('leave-pseudo-out enters the mean, not the guard', () => {
    const seen = parts(21, 200, 40, 3, 1);
    const pseudo = { kind: 'pseudo' as const, scores: parts(22, 200, 100, 2, 1) };
    // Heads fitted to the labels alone rank cut-paste no better than noise.
    const blind = { kind: 'leave-pseudo-out' as const, scores: parts(24, 200, 100, 0, 1.5) };
    const c = chooseCombination({ seen, unseen: [pseudo, blind] });
    expect(c.candidates.every((x) => x.passesGuard)).toBe(true);
    expect(c.candidates.find((x) => x.weight === 4)!.unseenAuc['leave-pseudo-out']).toBeLessThan(
      c.candidates.find((x) => x.weight === 0)!.unseenAuc['leave-pseudo-out']!,
    );
    expect(c.supervisedWeight).toBeGreaterThan(0);
    expect(c.supervisedWeight).toBeLessThan(chooseCombination({ seen, unseen: [pseudo] }).supervisedWeight);
  });

  it('a supervised part that adds only noise is left out', () => {
    const c = chooseCombination({ seen: parts(5, 200, 40, 0, 2), unseen: [] });
    expect(c.supervisedWeight).toBe(0);
  });

  it('no defect scored out of fold: at most the fixed weight, and says why', () => {
    const c = chooseCombination({ seen: parts(6, 30, 0, 0, 0), unseen: [] });
    expect(c.supervisedWeight).toBe(1);
    expect(c.reason).toMatch(/0 labelled defect\(s\)/);
  });
});

describe('splitParts', () => {
  it('adds the normality head with its minus sign to the supervised part', () => {
    const p = splitParts(
      { seen: 1, pseudo: 2, residual: 3, normality: 4, global: 5, knn: 6, gaussian: 7 },
      1,
    );
    expect(p).toEqual({ label: 1, supervised: 1 + 2 + 3 - 4 + 5, unsupervised: 13 });
  });

  it('keeps the PatchCore head apart', () => {
    expect(splitParts({ seen: 1, knn: 2, patchcore: 3 }, 0)).toEqual({
      label: 0,
      supervised: 1,
      unsupervised: 2,
      patchcore: 3,
    });
  });
});

describe('trainChosen', () => {
  const spec = { side: 4, channels: 6 };
  function makeSet(seed: number, nGood: number, nDefect: number) {
    const rng = new Rng(seed);
    const normals: ValidationNormal[] = Array.from({ length: nGood }, (_, i) => {
      const features = normalFeatures(rng, spec);
      return { id: `g${i}`, features, pseudo: [withDefect(rng, features, { from: 2, to: 4 })] };
    });
    const anomalies: ValidationAnomaly[] = Array.from({ length: nDefect }, (_, i) => ({
      id: `d${i}`,
      cls: i % 2 ? 'crack' : 'scratch',
      features: withDefect(rng, normalFeatures(rng, spec), { from: 0, to: 2 }),
    }));
    return { normals, anomalies };
  }
  const settings = resolveSettings({
    seed: 3,
    steps: 3,
    batchNormals: 4,
    batchAnomalies: 2,
    residualReduce: 3,
    residualWidth: 3,
    normalityWidth: 4,
    gaussianHead: false,
  });

  it('keeps the choice and its evidence (both stand-in kinds with two classes) and scores with it', async () => {
    const { normals, anomalies } = makeSet(11, 12, 4);
    const { state, validation } = await trainChosen(normals, anomalies, settings, { folds: 3 });
    const c = state.combination!;
    expect(validation?.combination).toEqual(c);
    expect(c.candidates.map((x) => x.weight)).toContain(0);
    expect(Object.keys(c.candidates[0].unseenAuc).sort()).toEqual(['leave-one-class-out', 'pseudo']);
    // The out-of-fold scores (the threshold is set on them) are those of the chosen weight.
    const plain = await crossValidate(normals, anomalies, settings, { folds: 3 });
    for (const [id, x] of Object.entries(validation!.scores)) {
      const p = splitParts(plain.scores[id].perHead, 0);
      expect(x.total).toBeCloseTo(c.supervisedWeight * p.supervised + p.unsupervised, 4);
    }
    expect(validation!.notes.join(' ')).toMatch(
      new RegExp(`weight ${c.supervisedWeight}, chosen on these same`),
    );
    const feats = [...normals.slice(0, 3).map((n) => n.features), anomalies[0].features];
    const s = scoreFeatures(state, feats);
    const unsupOnly = scoreFeatures(state, feats, { supervisedWeight: 0 });
    const full = scoreFeatures(state, feats, { supervisedWeight: 1 });
    s.forEach((x, i) => {
      const p = splitParts(full[i].perHead, 0);
      expect(x.total).toBeCloseTo(c.supervisedWeight * p.supervised + p.unsupervised, 4);
      expect(unsupOnly[i].total).toBeCloseTo(p.unsupervised, 4);
    });
  });

  it('one labelled defect: the validation still runs the guard, on the pseudo anomalies alone', async () => {
    const { normals, anomalies } = makeSet(13, 10, 1);
    const { state, validation } = await trainChosen(normals, anomalies, settings, { folds: 3 });
    expect(validation?.combination).toEqual(state.combination);
    expect(state.combination!.supervisedWeight).toBeLessThanOrEqual(1);
    expect(state.combination!.candidates.every((c) => c.unseenAuc.pseudo !== undefined)).toBe(true);
    expect(Object.keys(state.combination!.candidates[0].unseenAuc)).toEqual(['pseudo']);
  });

  it('one labelled class: its defects are held out of a model trained on normals and pseudo anomalies only, and cut-paste out of one trained on the labels only', async () => {
    const { normals, anomalies: two } = makeSet(15, 12, 4);
    const anomalies = two.map((a) => ({ ...a, cls: 'crack' }));
    const seenBy: StandInInfo[] = [];
    const validation = (
      await crossValidate(normals, anomalies, settings, {
        folds: 3,
        select: true,
        onStandIn: (x) => seenBy.push(x),
      })
    ).combination!;
    expect(Object.keys(validation.candidates[0].unseenAuc).sort()).toEqual([
      'leave-labels-out',
      'leave-pseudo-out',
      'pseudo',
    ]);
    expect(seenBy.map((x) => x.kind)).toEqual(['leave-labels-out', 'leave-pseudo-out']);
    const [loco, lpo] = seenBy;
    // Normals and pseudo anomalies only; it scores every labelled defect and normals it never trained on.
    expect(loco.trainAnomalyIds).toEqual([]);
    expect(loco.trainPseudo).toBeGreaterThan(0);
    expect(loco.state.hasSeen).toBe(false);
    expect(loco.heldOutIds).toEqual(expect.arrayContaining(anomalies.map((a) => a.id)));
    expect(loco.heldOutIds.filter((id) => loco.trainNormalIds.includes(id))).toEqual([]);
    // Every labelled defect, no pseudo anomaly and no pseudo head; held-out normals it never trained on.
    expect(lpo.trainAnomalyIds.sort()).toEqual(anomalies.map((a) => a.id).sort());
    expect(lpo.trainPseudo).toBe(0);
    expect(lpo.state.settings.heads).toEqual(['seen', 'residual', 'normality']);
    expect(lpo.heldOutIds.length).toBeGreaterThan(0);
    expect(lpo.heldOutIds.filter((id) => lpo.trainNormalIds.includes(id))).toEqual([]);
    // Two classes: leave-one-class-out per class, and no leave-pseudo-out.
    const kinds: string[] = [];
    await crossValidate(normals, two, settings, {
      folds: 3,
      select: true,
      onStandIn: (x) => kinds.push(x.kind),
    });
    expect(kinds).toEqual(['leave-one-class-out', 'leave-one-class-out']);
  });

  it('with the PatchCore head: one bank for the model and every fold, held-out normals scored without their own patches', async () => {
    const { normals, anomalies } = makeSet(14, 12, 4);
    const pcSettings = { ...settings, patchcoreHead: true };
    const banks: unknown[] = [];
    const { state, validation } = await trainChosen(normals, anomalies, pcSettings, { folds: 3 });
    await crossValidate(normals, anomalies, pcSettings, {
      folds: 3,
      onFold: (f) => banks.push(f.state.patchcore),
    });
    expect(state.patchcore).toBeDefined();
    expect(banks).toHaveLength(3);
    expect(banks.every((b) => b === state.patchcore)).toBe(true);
    const c = state.combination!;
    expect(c.patchcoreScale).toBeUndefined();
    // A held-out normal's PatchCore score is out of fold: not the 0 of matching its own patches.
    const heldNormal = Object.entries(validation!.scores).find(([, x]) => x.label === 'good')!;
    expect(heldNormal[1].perHead.patchcore).toBeGreaterThan(0);
    const feats = [normals[0].features, anomalies[0].features];
    const chosen = scoreFeatures(state, feats);
    // A model of before (its choice recorded a scale) scores the head at that scale.
    const third = scoreFeatures({ ...state, combination: { ...c, patchcoreScale: 1 / 3 } }, feats);
    chosen.forEach((x, i) => expect(third[i].perHead.patchcore!).toBeCloseTo(x.perHead.patchcore! / 3, 4));
    // A training normal's leave-one-out score is looked up: the same as searching again.
    const trainFeats = normals.slice(0, 4).map((n) => n.features);
    const looked = await patchCoreHeadScoresAsync(state.patchcore!, trainFeats);
    clearSearchedScores();
    const searched = await patchCoreHeadScoresAsync({ ...state.patchcore! }, trainFeats);
    // The same GEMM products, in other blocks: equal up to float rounding.
    looked.score.forEach((x, i) => expect(x).toBeCloseTo(searched.score[i], 5));
    looked.maps.forEach((x, i) => expect(x).toBeCloseTo(searched.maps[i], 5));
    expect(Math.min(...looked.score)).toBeGreaterThan(0);
    // Scale 0: the head is not scored at all.
    const off = scoreFeatures({ ...state, combination: { ...c, patchcoreScale: 0 } }, feats);
    expect(off.every((x) => x.perHead.patchcore === undefined)).toBe(true);
  });

  it('without folds: no choice, the fixed weights', async () => {
    const { normals, anomalies } = makeSet(12, 10, 2);
    const { state, validation } = await trainChosen(normals, anomalies, settings, { folds: 0 });
    expect(state.combination).toBeUndefined();
    expect(validation).toBeUndefined();
  });
});
