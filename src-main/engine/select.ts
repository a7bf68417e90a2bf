/**
 * Per-project choice of how much the supervised heads count against the unsupervised ones,
 * made from the project's own training data (cross-validation, validate.ts), never a test split.
 *
 * total(a) = a * supervised + unsupervised, a from CANDIDATE_WEIGHTS (0: unsupervised only,
 * 1: the fixed weights of settings.ts). Supervised: the heads that learnt from labelled or
 * pseudo defects (the paper's four and the global head); unsupervised: the distances to the
 * normals (kNN, Gaussian, PatchCore).
 *
 * Guard (unseen kinds): a candidate that ranks the stand-ins for unseen defects (defects of a
 * class left out of training, or pseudo anomalies of held-out normals) below the unsupervised
 * evidence alone is out. Among the others, the one-standard-error rule on the seen kinds: the
 * smallest a whose out-of-fold AUC is within one paired (DeLong) standard error of the best.
 * With a single labelled defect that error is unbounded, so the choice is a = 0.
 */
import { aucRoc } from './metrics';
import type { HeadName } from './types';
import { headSign } from './types';

/** Weights of the supervised part tried: powers of two around the fixed weights, and none. */
export const CANDIDATE_WEIGHTS: readonly number[] = [0, 0.25, 0.5, 1, 2, 4];

/** Heads that score distance to the training normals and learn nothing from defects. */
const UNSUPERVISED_HEADS: ReadonlySet<string> = new Set(['knn', 'gaussian', 'patchcore']);

export function isUnsupervisedHead(head: string): boolean {
  return UNSUPERVISED_HEADS.has(head);
}

/** One scored image, its total split into the two parts (signed contributions). */
export interface PartScore {
  label: 0 | 1;
  supervised: number;
  unsupervised: number;
}

/** Splits a score's per-head contributions (as they add up to its total) into the two parts. */
export function splitParts(perHead: Partial<Record<HeadName, number>>, label: 0 | 1): PartScore {
  let supervised = 0;
  let unsupervised = 0;
  for (const [h, v] of Object.entries(perHead)) {
    if (v === undefined) continue;
    if (isUnsupervisedHead(h)) unsupervised += headSign(h) * v;
    else supervised += headSign(h) * v;
  }
  return { label, supervised, unsupervised };
}

export type StandInKind = 'leave-one-class-out' | 'pseudo';

export interface SelectionEvidence {
  /** Out-of-fold scores of the labelled images: held-out normals and held-out defects. */
  seen: PartScore[];
  /** Held-out normals (label 0) against stand-ins for defects of an unseen kind (label 1). */
  unseen: { kind: StandInKind; scores: PartScore[] }[];
}

export interface CandidateEvidence {
  weight: number;
  /** Out-of-fold AUC-ROC on the seen kinds (null: no defect or no normal held out). */
  seenAuc: number | null;
  /** AUC-ROC per stand-in kind. */
  unseenAuc: Partial<Record<StandInKind, number>>;
  /** False when it ranks some stand-in kind below the unsupervised part alone. */
  passesGuard: boolean;
}

/** What a model keeps of the choice (state.combination and the manifest): the weight and why. */
export interface CombinationChoice {
  rule: 'one-standard-error, unseen-kind guard';
  supervisedWeight: number;
  /** Standard error of the seen AUC's difference to the best candidate (null: not estimable). */
  standardError: number | null;
  /** Seen AUC of the best candidate that passes the guard. */
  bestWeight: number | null;
  candidates: CandidateEvidence[];
  nGood: number;
  nDefect: number;
  reason: string;
}

const totalOf = (a: number) => (s: PartScore) => a * s.supervised + s.unsupervised;

function aucOrNull(scores: readonly PartScore[], a: number): number | null {
  const pos = scores.filter((s) => s.label === 1).length;
  if (pos === 0 || pos === scores.length) return null;
  return aucRoc(
    scores.map(totalOf(a)),
    scores.map((s) => s.label),
  );
}

/**
 * DeLong's structural components of each candidate's AUC on one set of scores: per defect,
 * the share of normals it outranks (ties count half), and per normal, the share of defects
 * outranking it.
 */
function structural(scores: readonly PartScore[], a: number): { v10: number[]; v01: number[] } {
  const total = totalOf(a);
  const pos = scores.filter((s) => s.label === 1).map(total);
  const neg = scores.filter((s) => s.label === 0).map(total);
  const psi = (x: number, y: number) => (x > y ? 1 : x === y ? 0.5 : 0);
  const v10 = pos.map((x) => neg.reduce((acc, y) => acc + psi(x, y), 0) / neg.length);
  const v01 = neg.map((y) => pos.reduce((acc, x) => acc + psi(x, y), 0) / pos.length);
  return { v10, v01 };
}

function variance(d: readonly number[]): number {
  const m = d.reduce((s, x) => s + x, 0) / d.length;
  return d.reduce((s, x) => s + (x - m) ** 2, 0) / (d.length - 1);
}

/**
 * Standard error of AUC(a) - AUC(b) on the same images (DeLong, Clarke-Pearson 1988);
 * Infinity with fewer than two defects or two normals, where it cannot be estimated.
 */
export function pairedAucStandardError(scores: readonly PartScore[], a: number, b: number): number {
  const nPos = scores.filter((s) => s.label === 1).length;
  const nNeg = scores.length - nPos;
  if (nPos < 2 || nNeg < 2) return Infinity;
  const sa = structural(scores, a);
  const sb = structural(scores, b);
  const d10 = sa.v10.map((x, i) => x - sb.v10[i]);
  const d01 = sa.v01.map((x, i) => x - sb.v01[i]);
  return Math.sqrt(variance(d10) / nPos + variance(d01) / nNeg);
}

export function chooseCombination(
  ev: SelectionEvidence,
  weights: readonly number[] = CANDIDATE_WEIGHTS,
): CombinationChoice {
  const ordered = [...new Set([0, ...weights])].sort((x, y) => x - y);
  const reference = new Map(ev.unseen.map((u) => [u.kind, aucOrNull(u.scores, 0)]));
  const candidates: CandidateEvidence[] = ordered.map((weight) => {
    const unseenAuc: Partial<Record<StandInKind, number>> = {};
    let passesGuard = true;
    for (const u of ev.unseen) {
      const auc = aucOrNull(u.scores, weight);
      if (auc === null) continue;
      unseenAuc[u.kind] = auc;
      if (auc < reference.get(u.kind)!) passesGuard = false;
    }
    return { weight, seenAuc: aucOrNull(ev.seen, weight), unseenAuc, passesGuard };
  });
  const nDefect = ev.seen.filter((s) => s.label === 1).length;
  const nGood = ev.seen.length - nDefect;
  const base = { rule: 'one-standard-error, unseen-kind guard' as const, candidates, nGood, nDefect };
  const allowed = candidates.filter((c) => c.passesGuard && c.seenAuc !== null);
  if (allowed.length === 0) {
    return {
      ...base,
      supervisedWeight: 0,
      standardError: null,
      bestWeight: null,
      reason: 'no out-of-fold defect score to weigh the supervised heads by: unsupervised only',
    };
  }
  // The best allowed candidate; on a tie, the one leaning more on the unsupervised part.
  const best = allowed.reduce((b, c) => (c.seenAuc! > b.seenAuc! ? c : b));
  for (const c of allowed) {
    if (c.weight >= best.weight) break;
    const se = pairedAucStandardError(ev.seen, best.weight, c.weight);
    if (best.seenAuc! - c.seenAuc! <= se) {
      return {
        ...base,
        supervisedWeight: c.weight,
        standardError: Number.isFinite(se) ? se : null,
        bestWeight: best.weight,
        reason:
          c.weight === 0
            ? `the supervised heads' gain on the labelled kinds (${fmt(best.seenAuc! - c.seenAuc!)}) is within one standard error (${Number.isFinite(se) ? fmt(se) : 'not estimable with fewer than 2 defects'}): unsupervised only`
            : `weight ${c.weight} is within one standard error of the best (${best.weight})`,
      };
    }
  }
  const excluded = candidates.filter((c) => !c.passesGuard).map((c) => c.weight);
  return {
    ...base,
    supervisedWeight: best.weight,
    standardError: null,
    bestWeight: best.weight,
    reason:
      (best.weight === allowed[0].weight
        ? `weight ${best.weight} ranks the labelled kinds best`
        : `weight ${best.weight} ranks the labelled kinds best, more than one standard error above every smaller weight`) +
      (excluded.length
        ? `; weight ${excluded.join(', ')} ranked stand-ins for unseen kinds below the unsupervised heads alone`
        : ''),
  };
}

const fmt = (x: number) => x.toFixed(3);
