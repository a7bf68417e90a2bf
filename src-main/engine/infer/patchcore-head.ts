/**
 * The 'patchcore' head: PatchCore (infer/patchcore.ts) on the training normals as an
 * unsupervised head of the product, beside kNN and the Gaussian. Its input is the level-0 map
 * of the heads' feature layer and the backbone taps the features carry (the finer layer of
 * PatchCore's pair: patchCoreTapLayers), locally averaged and concatenated on the finest grid.
 * Score: the largest nearest-bank-patch distance; its map joins the heatmap.
 *
 * Scoring: the nearest-bank search as GEMM products (patchCoreHeadScoresAsync); the loops
 * (patchCoreHeadScores) serve synchronous callers and tests.
 *
 * Calibration: leave-one-out, like the kNN head: each training normal is scored by the bank
 * without its own patches (the bank records their source image; a query is known as training
 * image i by its fingerprint), so a z-score means "standard deviations above an unseen normal",
 * and training images get honest scores in the review queue.
 */
import type { FeatureMap, ImageFeatures } from '../types';
import { EngineError } from '../types';
import type { HeadStats } from '../heads/state';
import { stats } from './knn';
import {
  fitPatchCore,
  patchCoreScores,
  patchCoreScoresAsync,
  patchEmbedding,
  PATCHCORE_DEFAULTS,
  type PatchCoreModel,
  type PatchCoreOptions,
  type PatchCoreScores,
} from './patchcore';
import { MOBILENET_ID, RESNET50_ID } from '../backbone';
import type { MatMulFn } from '../train/matmul-runtime';
import {
  bankKey,
  imageKey,
  leaveOneOut,
  remember,
  rememberLeaveOneOut,
  searchedScores,
} from './patchcore-search-cache';

/**
 * The finer layer of PatchCore's pair per backbone, taken as a tap beside the heads' own layer:
 * MobileNet's conv_pw_11 (stride 16) beside conv_pw_13 (32); ResNet-50's stage 2 beside stage 3,
 * the paper's own pair.
 */
const PATCHCORE_TAPS: Record<string, string> = {
  [MOBILENET_ID]: 'conv_pw_11_relu',
  [RESNET50_ID]: 'stage2',
};

/** The backbone taps the head wants with a backbone (none known: the heads' layer alone). */
export function patchCoreTapLayers(backboneId: string): string[] {
  const t = PATCHCORE_TAPS[backboneId];
  return t ? [t] : [];
}

/** The taps the heads of these settings read with this backbone (BackboneSpec.tapLayers). */
export function headTapLayers(settings: { patchcoreHead?: boolean }, backboneId: string): string[] {
  return settings.patchcoreHead ? patchCoreTapLayers(backboneId) : [];
}

/**
 * The head's bank: the bench baseline's (full patch features, 10 % of the patches, at most
 * 2048), selected from at most 20000 candidate patches, which bounds the greedy selection's
 * cost on large projects; no projection of the patches (docs/benchmarks/choices.md has what
 * the cap and a projection cost).
 */
export const PATCHCORE_HEAD_OPTIONS: Omit<PatchCoreOptions, 'seed'> = {
  ...PATCHCORE_DEFAULTS,
  candidateMax: 20000,
};

export interface PatchCoreHeadState extends PatchCoreModel {
  /** The taps (ImageFeatures.taps) the patches are made of, beside level 0. */
  taps: string[];
  /** Per training image [sum, sum of squares] of its level-0 map (float32): who is a training image. */
  fingerprints: Float32Array;
}

export interface PatchCoreHeadFit {
  state: PatchCoreHeadState;
  calibration: HeadStats;
}

/** The tap maps of one image the head reads, in order; features without one are refused. */
function tapMaps(f: ImageFeatures, taps: readonly string[]): FeatureMap[] {
  return taps.map((t) => {
    const m = f.taps?.[t];
    if (!m)
      throw new EngineError(
        `The PatchCore head needs the backbone layer ${t} with the features (BackboneSpec.tapLayers); these features lack it.`,
      );
    return m;
  });
}

/** The head's patch map of one image: level 0 and the taps, finest grid first. */
export function patchCoreHeadMap(f: ImageFeatures, taps: readonly string[]): FeatureMap {
  const layers = [f.levels[0], ...tapMaps(f, taps)];
  // Stable sort: the finest grid leads (patchEmbedding upsamples the others onto it).
  layers.sort((a, b) => b.h * b.w - a.h * a.w);
  return patchEmbedding(layers);
}

export async function fitPatchCoreHead(
  normals: readonly ImageFeatures[],
  seed: number,
  opts: Partial<PatchCoreOptions> = {},
): Promise<PatchCoreHeadFit> {
  if (normals.length < 2) throw new EngineError('The PatchCore head needs at least 2 good images.');
  const taps = Object.keys(normals[0].taps ?? {}).sort();
  const maps = normals.map((f) => patchCoreHeadMap(f, taps));
  const model = fitPatchCore(maps, { ...PATCHCORE_HEAD_OPTIONS, ...opts, seed });
  const fingerprints = new Float32Array(normals.length * 2);
  normals.forEach((f, i) => fingerprints.set(fingerprint(f), 2 * i));
  const state: PatchCoreHeadState = { ...model, taps, fingerprints };
  const loo = await patchCoreScoresAsync(
    state,
    maps,
    normals.map((_, i) => i),
  );
  looOf.set(state, loo);
  rememberLeaveOneOut(bankKey(state), fingerprints, loo);
  return { state, calibration: stats(loo.score) };
}

/**
 * The training normals' leave-one-out scores of a fitted state (not saved with a model; a
 * reloaded model finds them by content, patchcore-search-cache.ts): a training normal scored
 * without its own patches again (the cross-validation's held-out and reference normals, the
 * queue's training images) is looked up, not searched again.
 */
const looOf = new WeakMap<PatchCoreHeadState, PatchCoreScores>();

/** The last fit, by its normals' fingerprints and seed: a retrain on the same good images reuses it. */
let lastFit: { key: string; fit: Promise<PatchCoreHeadFit> } | null = null;

/**
 * The project's head: fitted once on all the good images and shared by the final model and
 * every fold of its cross-validation (validate.ts scores a fold's held-out normals with their
 * own patches left out), and cached, since the bank depends on the good images alone.
 */
export function projectPatchCoreHead(
  normals: readonly ImageFeatures[],
  seed: number,
): Promise<PatchCoreHeadFit> {
  const key = `${seed}|${Object.keys(normals[0]?.taps ?? {})
    .sort()
    .join()}|${normals.map((f) => fingerprint(f).join()).join(';')}`;
  if (lastFit?.key !== key) {
    const fit = fitPatchCoreHead(normals, seed);
    lastFit = { key, fit };
    // A failed fit is not kept: the next retrain tries again.
    fit.catch(() => {
      if (lastFit?.fit === fit) lastFit = null;
    });
  }
  return lastFit.fit;
}

function fingerprint(f: ImageFeatures): [number, number] {
  const d = f.levels[0].data;
  let s = 0;
  let q = 0;
  for (let i = 0; i < d.length; i++) {
    s += d[i];
    q += d[i] * d[i];
  }
  return [Math.fround(s), Math.fround(q)];
}

/**
 * What a scoring of query images has to search: a training image (same fingerprint) is scored
 * without its own patches, and so is query i without training image exclude[i]'s (when given
 * and not -1); a training normal scored without its own patches is its leave-one-out score of
 * the fit, looked up, and so is a query excluding nothing that this bank has scored before
 * (patchcore-search-cache.ts). `merge` puts the searched and the looked-up scores back in query
 * order, and remembers what was searched with nothing excluded.
 */
function searchPlan(
  state: PatchCoreHeadState,
  feats: readonly ImageFeatures[],
  exclude?: readonly number[],
): { maps: FeatureMap[]; exclude: number[]; merge: (searched: PatchCoreScores) => PatchCoreScores } {
  const index = new Map<string, number>();
  for (let i = 0; i < state.fingerprints.length / 2; i++) {
    const key = `${state.fingerprints[2 * i]},${state.fingerprints[2 * i + 1]}`;
    if (!index.has(key)) index.set(key, i);
  }
  const own = feats.map((f) => index.get(fingerprint(f).join()) ?? -1);
  const ex = exclude ?? own;
  const loo = looOf.get(state) ?? leaveOneOut(bankKey(state), state.fingerprints);
  const known = feats.map((_, i) => (loo && ex[i] >= 0 && ex[i] === own[i] ? ex[i] : -1));
  // Features the bank cannot read are refused whether or not their level 0 was scored before.
  for (const f of feats) tapMaps(f, state.taps);
  const remembered = searchedScores(bankKey(state));
  const keys = feats.map((f, i) => (ex[i] < 0 ? imageKey(f) : undefined));
  const cached = keys.map((k) => (k === undefined ? undefined : remembered.get(k)));
  const todo = feats.flatMap((_, i) => (known[i] < 0 && !cached[i] ? [i] : []));
  const ppi = state.h * state.w;
  const merge = (searched: PatchCoreScores): PatchCoreScores => {
    todo.forEach((q, j) => {
      const k = keys[q];
      if (k !== undefined)
        remember(remembered, k, {
          score: searched.score[j],
          map: searched.maps.slice(j * ppi, (j + 1) * ppi),
        });
    });
    if (todo.length === feats.length) return searched;
    const score = new Float32Array(feats.length);
    const maps = new Float32Array(feats.length * ppi);
    const at = new Map(todo.map((q, j) => [q, j]));
    feats.forEach((_, i) => {
      const c = cached[i];
      if (c) {
        score[i] = c.score;
        maps.set(c.map, i * ppi);
        return;
      }
      const [from, j] = known[i] >= 0 ? [loo!, known[i]] : [searched, at.get(i)!];
      score[i] = from.score[j];
      maps.set(from.maps.subarray(j * ppi, (j + 1) * ppi), i * ppi);
    });
    return { score, maps, h: state.h, w: state.w };
  };
  return {
    maps: todo.map((i) => patchCoreHeadMap(feats[i], state.taps)),
    exclude: todo.map((i) => ex[i]),
    merge,
  };
}

/**
 * Scores of query images (see searchPlan for who is scored without which patches), the
 * nearest-bank search as GEMM products (patchCoreScoresAsync): the product's scoring.
 */
export async function patchCoreHeadScoresAsync(
  state: PatchCoreHeadState,
  feats: readonly ImageFeatures[],
  exclude?: readonly number[],
  matMul?: MatMulFn,
): Promise<PatchCoreScores> {
  const plan = searchPlan(state, feats, exclude);
  return plan.merge(await patchCoreScoresAsync(state, plan.maps, plan.exclude, matMul));
}

/** patchCoreHeadScoresAsync with the search in plain loops (patchCoreScores), for synchronous callers. */
export function patchCoreHeadScores(
  state: PatchCoreHeadState,
  feats: readonly ImageFeatures[],
  exclude?: readonly number[],
): PatchCoreScores {
  const plan = searchPlan(state, feats, exclude);
  return plan.merge(patchCoreScores(state, plan.maps, plan.exclude));
}
