/**
 * Per-project choice of how much the supervised heads count against the unsupervised ones,
 * made from the project's own training data (cross-validation, validate.ts), never a test split.
 *
 * total(a) = a * supervised + unsupervised, a from CANDIDATE_WEIGHTS (0: unsupervised only, 1:
 * the fixed weights of settings.ts). Supervised: the heads that learnt from labelled or pseudo
 * defects (the paper's four and the global head); unsupervised: the distances to the normals
 * (kNN, Gaussian, and PatchCore when the project has it on, counted as set: its share is not
 * chosen on the labelled defects, which say nothing of how it ranks kinds nobody labelled;
 * docs/benchmarks/choices.md, "PatchCore as a product head").
 *
 * Evidence, all out of fold: seen kinds (held-out labelled defects against held-out normals)
 * and stand-ins for unseen kinds: pseudo anomalies of held-out normals; defects of a labelled
 * class scored by a model trained without that class, when two or more are labelled; with one
 * class, its defects scored by a model trained on no labelled defect (leave-labels-out) and
 * pseudo anomalies scored by one trained on no pseudo anomaly (leave-pseudo-out), both when two
 * or more defects are labelled. Guard: a candidate that ranks a GUARD_KINDS stand-in below the
 * unsupervised part alone is out. With the PatchCore head, the stand-ins made of pseudo anomalies
 * are judged without it (PSEUDO_KINDS), and one more doubling of the weight is tried and allowed
 * without seen-kind evidence. Of the rest, the one with the best mean AUC over seen kinds
 * and every stand-in wins, the smaller weight on a tie. With one labelled defect there is no
 * seen-kind evidence: the largest weight up to 1 (2 with the head) that the guard allows.
 */
import { aucRoc } from './metrics';
import type { HeadName } from './types';
import { headSign } from './types';

/** Weights of the supervised part tried: powers of two around the fixed weights, and none. */
export const CANDIDATE_WEIGHTS: readonly number[] = [0, 0.25, 0.5, 1, 2, 4];

/**
 * With the PatchCore head the unsupervised part has a third head at the weight of the other two,
 * so the same supervised weight is a smaller share of the total: one more doubling is tried, and
 * the fixed weight (the most taken without seen-kind evidence) is doubled too.
 */
export const PATCHCORE_EXTRA_WEIGHT = 8;

function hasPatchCore(ev: SelectionEvidence): boolean {
  return ev.seen.some((s) => s.patchcore !== undefined);
}

/** The weights tried on this evidence: CANDIDATE_WEIGHTS, and the extra one with the head. */
export function candidateWeights(ev: SelectionEvidence): number[] {
  return hasPatchCore(ev) ? [...CANDIDATE_WEIGHTS, PATCHCORE_EXTRA_WEIGHT] : [...CANDIDATE_WEIGHTS];
}

/** Heads that score distance to the training normals and learn nothing from defects. */
const UNSUPERVISED_HEADS: ReadonlySet<string> = new Set(['knn', 'gaussian', 'patchcore']);

export function isUnsupervisedHead(head: string): boolean {
  return UNSUPERVISED_HEADS.has(head);
}

/** One scored image, its total split into the parts (signed contributions). */
export interface PartScore {
  label: 0 | 1;
  supervised: number;
  /** The unsupervised heads but PatchCore. */
  unsupervised: number;
  /** The PatchCore head's contribution (absent: the model has none). */
  patchcore?: number;
}

/** Splits a score's per-head contributions (as they add up to its total) into the two parts. */
export function splitParts(perHead: Partial<Record<HeadName, number>>, label: 0 | 1): PartScore {
  let supervised = 0;
  let unsupervised = 0;
  for (const [h, v] of Object.entries(perHead)) {
    if (v === undefined || h === 'patchcore') continue;
    if (isUnsupervisedHead(h)) unsupervised += headSign(h) * v;
    else supervised += headSign(h) * v;
  }
  const pc = perHead.patchcore;
  return pc === undefined
    ? { label, supervised, unsupervised }
    : { label, supervised, unsupervised, patchcore: pc };
}

export type StandInKind = 'leave-one-class-out' | 'leave-labels-out' | 'leave-pseudo-out' | 'pseudo';

/**
 * Stand-ins the guard reads. With one class labelled, leave-labels-out (its model trains on no
 * labelled defect: no seen or global head) and leave-pseudo-out (no pseudo head) enter the mean
 * only: each model lacks heads the shipped model has, and leave-labels-out has only the few
 * labelled defects as positives, so a guard on them turns on noise (docs/benchmarks/choices.md,
 * "One labelled class", has what each cost as a guard).
 */
export const GUARD_KINDS: ReadonlySet<StandInKind> = new Set(['pseudo', 'leave-one-class-out']);

/**
 * Stand-ins made of pseudo anomalies: pasted patches, the kind a patch-distance head finds by
 * construction, whatever it makes of real defects. They are judged without the PatchCore head's
 * contribution (weight 0 on it), so that its skill at pasted patches does not hold the supervised
 * weight down (docs/benchmarks/choices.md, "PatchCore as a product head", session 12).
 */
export const PSEUDO_KINDS: ReadonlySet<StandInKind> = new Set(['pseudo', 'leave-pseudo-out']);

export interface SelectionEvidence {
  /** Out-of-fold scores of the labelled images: held-out normals and held-out defects. */
  seen: PartScore[];
  /** Held-out normals (label 0) against stand-ins for defects of an unseen kind (label 1). */
  unseen: { kind: StandInKind; scores: PartScore[] }[];
}

export interface CandidateEvidence {
  weight: number;
  /** Multiplier of the PatchCore head's weight: only in the choices of models before 2026-12-02. */
  patchcoreScale?: number;
  /** Out-of-fold AUC-ROC on the seen kinds (null: no defect or no normal held out). */
  seenAuc: number | null;
  /** AUC-ROC per stand-in kind (PSEUDO_KINDS: without the PatchCore head). */
  unseenAuc: Partial<Record<StandInKind, number>>;
  /** Mean of the seen AUC and the stand-in AUCs: what the choice maximises. */
  meanAuc: number | null;
  /** False when it ranks some GUARD_KINDS stand-in below the unsupervised part alone. */
  passesGuard: boolean;
}

const RULE =
  'best mean AUC over seen kinds and stand-ins, unseen-kind guard (one class: leave-labels-out and leave-pseudo-out in the mean)';

/** What a model keeps of the choice (state.combination and the manifest): the weight and why. */
export interface CombinationChoice {
  /** RULE, or provisional.ts PROVISIONAL_RULE before the validation has chosen. */
  rule: string;
  supervisedWeight: number;
  /**
   * Multiplier of the PatchCore head's weight, 0: left out. Models before 2026-12-02 chose it on
   * the held-out defects; since, the head counts as set and this is absent (read as 1).
   */
  patchcoreScale?: number;
  candidates: CandidateEvidence[];
  nGood: number;
  nDefect: number;
  reason: string;
}

/** The total of a scored image under supervised weight a and PatchCore scale b (1: as set). */
export function partTotal(s: PartScore, a: number, b = 1): number {
  return a * s.supervised + s.unsupervised + b * (s.patchcore ?? 0);
}

function aucOrNull(scores: readonly PartScore[], a: number, b = 1): number | null {
  const pos = scores.filter((s) => s.label === 1).length;
  if (pos === 0 || pos === scores.length) return null;
  return aucRoc(
    scores.map((s) => partTotal(s, a, b)),
    scores.map((s) => s.label),
  );
}

/**
 * Below this many labelled defects there is no seen-kind evidence: the one defect is scored out
 * of fold by a model that trained on no defect at all.
 */
export const MIN_DEFECTS_TO_WEIGH = 2;

/** Without seen-kind evidence no weight above the fixed one (settings.ts) is taken. */
const FIXED_WEIGHT = 1;

/** The fixed weight on this evidence: one doubling more with the PatchCore head. */
export function fixedWeight(ev: SelectionEvidence): number {
  return hasPatchCore(ev) ? 2 * FIXED_WEIGHT : FIXED_WEIGHT;
}

export function chooseCombination(
  ev: SelectionEvidence,
  weights: readonly number[] = candidateWeights(ev),
): CombinationChoice {
  const ordered = [...new Set([0, ...weights])].sort((x, y) => x - y);
  const pcOf = (kind: StandInKind) => (PSEUDO_KINDS.has(kind) ? 0 : 1);
  const reference = new Map(ev.unseen.map((u) => [u.kind, aucOrNull(u.scores, 0, pcOf(u.kind))]));
  const candidates: CandidateEvidence[] = ordered.map((weight) => {
    const unseenAuc: Partial<Record<StandInKind, number>> = {};
    let passesGuard = true;
    for (const u of ev.unseen) {
      const auc = aucOrNull(u.scores, weight, pcOf(u.kind));
      if (auc === null) continue;
      unseenAuc[u.kind] = auc;
      if (GUARD_KINDS.has(u.kind) && auc < reference.get(u.kind)!) passesGuard = false;
    }
    const seenAuc = aucOrNull(ev.seen, weight);
    const all = seenAuc === null ? [] : [seenAuc, ...Object.values(unseenAuc)];
    const meanAuc = all.length ? all.reduce((x, y) => x + y, 0) / all.length : null;
    return { weight, seenAuc, unseenAuc, meanAuc, passesGuard };
  });
  const nDefect = ev.seen.filter((s) => s.label === 1).length;
  const nGood = ev.seen.length - nDefect;
  if (nDefect < MIN_DEFECTS_TO_WEIGH) {
    // Then only the guard speaks: the largest weight up to the fixed one that passes it.
    const fixed = fixedWeight(ev);
    const pick = candidates.filter((c) => c.passesGuard && c.weight <= fixed).pop()!;
    return {
      rule: RULE,
      supervisedWeight: pick.weight,
      candidates,
      nGood,
      nDefect,
      reason:
        `${nDefect} labelled defect(s): no out-of-fold evidence on the labelled kinds, so at most the fixed weight ${fixed}` +
        (pick.weight < fixed
          ? `; larger weights ranked stand-ins for unseen kinds below the unsupervised heads alone`
          : ''),
    };
  }
  // Weight 0 always passes (it is the reference), so `allowed` is never empty here; the smaller
  // weight wins a tie: it leans on the unsupervised part.
  const allowed = candidates.filter((c) => c.passesGuard && c.meanAuc !== null);
  const best = allowed.reduce((x, c) => (c.meanAuc! > x.meanAuc! ? c : x));
  const excluded = candidates.filter((c) => !c.passesGuard).map((c) => c.weight);
  const unsupOnly = allowed.find((c) => c.weight === 0)!;
  return {
    rule: RULE,
    supervisedWeight: best.weight,
    candidates,
    nGood,
    nDefect,
    reason:
      `weight ${best.weight} ranks best on average over the labelled kinds and the stand-ins for unseen kinds (AUC ${fmt(best.meanAuc!)}, unsupervised only ${fmt(unsupOnly.meanAuc!)})` +
      (excluded.length
        ? `; weight ${excluded.join(', ')} ranked stand-ins for unseen kinds below the unsupervised heads alone`
        : ''),
  };
}

const fmt = (x: number) => x.toFixed(3);
