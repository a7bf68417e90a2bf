/**
 * Scoring cached feature maps with a trained DraState, in batches.
 *
 * Combination rule (settings.combine, overridable per call for ablations):
 *  - 'sum' (the paper): total = seen + pseudo + residual - normality on raw head scores;
 *    the kNN head, when on, adds its z-score (distance standardised on training normals)
 *    times settings.knnWeight (default 1).
 *  - 'calibrated': every head is first standardised by its mean/std on training normals
 *    (z = (s - mean) / std), then total = z_seen + z_pseudo + z_residual - z_normality (+ z_knn),
 *    so heads of very different raw scales weigh alike (kNN again times knnWeight).
 *  - 'balanced' (default): the paper's raw sum, plus the kNN, Gaussian and global z-scores
 *    each scaled by the spread of that sum on training normals (times knnWeight /
 *    gaussianWeight / globalWeight), so the extra heads weigh like the DRA part whatever its
 *    raw scale.
 * The Gaussian head (distance to the normals' distribution, infer/gaussian.ts) and the global
 * head (whole-image classifier, heads/global-head.ts) add their z-scores (leave-one-out
 * calibration) times their weights under every rule; the global head's weight also grows with
 * the square root of the defects it learnt from (globalEvidence). Neither has a patch map.
 * The PatchCore head (infer/patchcore-head.ts) adds its z-score (leave-one-out calibration)
 * times patchcoreWeight, and its patch map, so scaled, to the heatmap.
 * Under every rule the supervised heads (the paper's four and the global head) are then
 * multiplied by the weight chosen on the project's own cross-validation (state.combination,
 * select.ts; 1 when none was chosen).
 * perHead holds the values that add up to total (normality with a plus sign: it is
 * subtracted); raw holds the uncalibrated scores. The heatmap is the level-0 sum of the
 * patch heads' maps, scaled the same way (each patch map minus mean over std when calibrated,
 * so its top-K mean is the head's z-score).
 */
import * as tf from '@tensorflow/tfjs';
import type { CombineRule, HeadName, ImageFeatures, ImageScore } from '../types';
import { EngineError } from '../types';
import { disposeHeadTensors, forwardLevel, headTensors } from '../heads/forward';
import type { HeadTensors } from '../heads/forward';
import type { DraState, HeadStats } from '../heads/state';
import { topKCount, topKMean } from '../heads/topk';
import { knnScores } from './knn';
import { activeHeads } from '../heads/active';
import { globalEvidence, globalScores } from '../heads/global-head';
import { gaussianScores } from './gaussian';
import { patchCoreHeadScores, patchCoreHeadScoresAsync } from './patchcore-head';
import { resizeMap, type PatchCoreScores } from './patchcore';
import { plainForwardApplies, plainLevel, runAsync, runSync, type Products } from './plain-forward';
import { headMatMul } from '../train/matmul-runtime';
import { StepBuffers } from '../train/fast-step';

export interface RawScores {
  seen: Float32Array;
  pseudo: Float32Array;
  residual: Float32Array;
  normality: Float32Array;
  /** Level-0 patch maps [N, h*w] of the patch heads. */
  maps: { h: number; w: number; seen: Float32Array; pseudo: Float32Array; residual: Float32Array };
}

export interface ScoreOptions {
  combine?: CombineRule;
  /** Turn the kNN head off (or on, if the state has one) for this call. */
  knn?: boolean;
  /** Weight of the kNN z-score in the total (default settings.knnWeight, else 1). */
  knnWeight?: number;
  /** Weight of the Gaussian head's z-score in the total (default settings.gaussianWeight, else 1). */
  gaussianWeight?: number;
  /** Weight of the PatchCore head's z-score in the total (default settings.patchcoreWeight, else 1). */
  patchcoreWeight?: number;
  /** Weight of the global head's z-score in the total (default settings.globalWeight, else 1). */
  globalWeight?: number;
  /** Weight of the supervised heads (default state.combination's choice, else 1). */
  supervisedWeight?: number;
  /**
   * Per query, the training image (index into the PatchCore head's normals) whose patches it may
   * not match, -1 none: e.g. a training normal's pseudo anomaly. Absent: training images are
   * known by their fingerprint.
   */
  patchcoreExclude?: readonly number[];
  /** Images per forward pass. */
  batchSize?: number;
}

/** One live copy of the weights, for the most recently used state (scoring calls come in runs). */
let cached: {
  state: DraState;
  t: HeadTensors;
  refs: tf.Tensor3D[];
  bnMean: tf.Tensor1D;
  bnVar: tf.Tensor1D;
} | null = null;

function tensorsFor(state: DraState) {
  if (cached?.state === state) return cached;
  releaseScoringTensors();
  const r = state.weights.residual;
  cached = {
    state,
    t: headTensors(state.weights, false),
    refs: state.reference.map((m) => tf.tensor3d(m.data, [m.h, m.w, m.c])),
    bnMean: tf.tensor1d(r.runMean),
    bnVar: tf.tensor1d(r.runVar),
  };
  return cached;
}

/** Frees the cached weight tensors (e.g. when a model is unloaded). */
export function releaseScoringTensors(): void {
  if (!cached) return;
  disposeHeadTensors(cached.t);
  for (const t of [...cached.refs, cached.bnMean, cached.bnVar]) t.dispose();
  cached = null;
}

function checkShapes(state: DraState, feats: readonly ImageFeatures[]): void {
  feats.forEach((f, i) => {
    state.levels.forEach((s, l) => {
      const m = f.levels[l];
      if (!m || m.h !== s.h || m.w !== s.w || m.c !== s.c || m.data.length !== s.h * s.w * s.c) {
        throw new EngineError(
          `Image ${i}: feature map at pyramid level ${l} is ` +
            (m ? `${m.h}x${m.w}x${m.c}` : 'missing') +
            `, the model was trained on ${s.h}x${s.w}x${s.c} (same backbone and input size needed).`,
        );
      }
    });
  });
}

/**
 * Uncalibrated DRA head scores and level-0 patch maps. forward: 'plain' (plain-forward.ts)
 * where it applies, else TF.js's forwardLevel; 'tfjs' forces forwardLevel (tests compare).
 */
export function scoreRaw(
  state: DraState,
  feats: readonly ImageFeatures[],
  batchSize = 64,
  forward: 'auto' | 'tfjs' = 'auto',
): RawScores {
  return runSync(rawScores(state, feats, batchSize, forward));
}

/** scoreRaw with the plain forward's products on the fastest runtime (matmul-runtime.ts). */
export async function scoreRawAsync(
  state: DraState,
  feats: readonly ImageFeatures[],
  batchSize = 64,
): Promise<RawScores> {
  return runAsync(rawScores(state, feats, batchSize, 'auto'), (await headMatMul()).matMul);
}

function* rawScores(
  state: DraState,
  feats: readonly ImageFeatures[],
  batchSize: number,
  forward: 'auto' | 'tfjs',
): Products<RawScores> {
  checkShapes(state, feats);
  const n = feats.length;
  const { h: h0, w: w0 } = state.levels[0];
  const p0 = h0 * w0;
  const out: RawScores = {
    seen: new Float32Array(n),
    pseudo: new Float32Array(n),
    residual: new Float32Array(n),
    normality: new Float32Array(n),
    maps: {
      h: h0,
      w: w0,
      seen: new Float32Array(n * p0),
      pseudo: new Float32Array(n * p0),
      residual: new Float32Array(n * p0),
    },
  };
  if (n === 0) return out;
  const plain = forward === 'auto' && plainForwardApplies(state.weights);
  const live = plain ? null : tensorsFor(state);
  const scratch = new StepBuffers();
  const nLevels = state.levels.length;
  for (let s = 0; s < n; s += batchSize) {
    const part = feats.slice(s, s + batchSize);
    const b = part.length;
    for (let l = 0; l < nLevels; l++) {
      const shape = state.levels[l];
      const p = shape.h * shape.w;
      const k = topKCount(state.settings.topKRatio, p);
      const { seen, pseudo, residual, normality } = live
        ? tfjsLevel(live, part, l, shape)
        : yield* plainLevel(state.weights, part, l, state.reference[l], scratch);
      const heads: [keyof RawScores['maps'] & ('seen' | 'pseudo' | 'residual'), Float32Array][] = [
        ['seen', seen],
        ['pseudo', pseudo],
        ['residual', residual],
      ];
      for (const [name, maps] of heads) {
        const top = topKMean(maps, b, p, k);
        for (let i = 0; i < b; i++) out[name][s + i] += top[i] / nLevels;
        if (l === 0) out.maps[name].set(maps, s * p0);
      }
      for (let i = 0; i < b; i++) out.normality[s + i] += normality[i] / nLevels;
    }
  }
  return out;
}

function tfjsLevel(
  live: ReturnType<typeof tensorsFor>,
  part: readonly ImageFeatures[],
  l: number,
  shape: { h: number; w: number; c: number },
): { seen: Float32Array; pseudo: Float32Array; residual: Float32Array; normality: Float32Array } {
  const b = part.length;
  const size = shape.h * shape.w * shape.c;
  const x = new Float32Array(b * size);
  part.forEach((f, i) => x.set(f.levels[l].data, i * size));
  const [seen, pseudo, residual, normality] = tf.tidy(() => {
    const o = forwardLevel(live.t, tf.tensor4d(x, [b, shape.h, shape.w, shape.c]), live.refs[l], {
      training: false,
      mean: live.bnMean,
      variance: live.bnVar,
    });
    return [o.seen, o.pseudo, o.residual, o.normality].map((t) => t.dataSync() as Float32Array);
  });
  return { seen, pseudo, residual, normality };
}

const z = (v: number, st: HeadStats | undefined): number => (st ? (v - st.mean) / st.std : v);

export function scoreFeatures(
  state: DraState,
  feats: readonly ImageFeatures[],
  opts: ScoreOptions = {},
): ImageScore[] {
  const pc = patchCoreApplies(state, opts)
    ? patchCoreHeadScores(state.patchcore!, feats, opts.patchcoreExclude)
    : undefined;
  return combineScores(state, feats, scoreRaw(state, feats, opts.batchSize), opts, pc);
}

/** scoreFeatures with the heads' products on the fastest runtime (the app's and the CLI's scoring). */
export async function scoreFeaturesAsync(
  state: DraState,
  feats: readonly ImageFeatures[],
  opts: ScoreOptions = {},
): Promise<ImageScore[]> {
  const pc = await patchCoreAsync(state, feats, opts);
  return combineScores(state, feats, await scoreRawAsync(state, feats, opts.batchSize), opts, pc);
}

/**
 * scoreFeatures with the PatchCore head's nearest-bank search as GEMM products (by far its
 * costliest part) and the other heads as scoreFeatures scores them, so that a model without
 * the head scores bit-identically (the cross-validation's and the benchmark's scoring).
 */
export async function scoreFeaturesPatchCoreAsync(
  state: DraState,
  feats: readonly ImageFeatures[],
  opts: ScoreOptions = {},
): Promise<ImageScore[]> {
  const pc = await patchCoreAsync(state, feats, opts);
  return combineScores(state, feats, scoreRaw(state, feats, opts.batchSize), opts, pc);
}

/** Left out by the project's choice (select.ts), the PatchCore head is not scored at all: it is the costliest head. */
function patchCoreApplies(state: DraState, opts: ScoreOptions): boolean {
  return !!state.patchcore && patchCoreWeight(state, opts) !== 0;
}

function patchCoreAsync(state: DraState, feats: readonly ImageFeatures[], opts: ScoreOptions) {
  return patchCoreApplies(state, opts)
    ? patchCoreHeadScoresAsync(state.patchcore!, feats, opts.patchcoreExclude)
    : Promise.resolve(undefined);
}

/** The PatchCore head's weight in the total, before the 'balanced' rule's scaling. */
function patchCoreWeight(state: DraState, opts: ScoreOptions): number {
  return (
    (opts.patchcoreWeight ?? state.settings.patchcoreWeight ?? 1) * (state.combination?.patchcoreScale ?? 1)
  );
}

function combineScores(
  state: DraState,
  feats: readonly ImageFeatures[],
  raw: RawScores,
  opts: ScoreOptions,
  pc: PatchCoreScores | undefined,
): ImageScore[] {
  const combine = opts.combine ?? state.settings.combine ?? 'sum';
  const useKnn = (opts.knn ?? state.settings.knnHead) && !!state.knn;
  const knn = useKnn ? knnScores(state.knn!, feats, state.settings.topKRatio) : undefined;
  const cal = state.calibration;
  // 'balanced': the extra heads' z-scores are put on the scale of the DRA sum's spread on
  // training normals.
  const extraWeight = (base: number): number => (combine === 'balanced' ? base * (cal.dra?.std ?? 1) : base);
  const knnWeight = extraWeight(opts.knnWeight ?? state.settings.knnWeight ?? 1);
  const gaussian = state.gaussian ? gaussianScores(state.gaussian, feats) : undefined;
  const gaussianWeight = extraWeight(opts.gaussianWeight ?? state.settings.gaussianWeight ?? 1);
  const patchcoreWeight = extraWeight(patchCoreWeight(state, opts));
  const global = state.global ? globalScores(state.global, feats) : undefined;
  const globalWeight =
    extraWeight(opts.globalWeight ?? state.settings.globalWeight ?? 1) *
    (state.global ? globalEvidence(state.global) : 1);
  const sup = opts.supervisedWeight ?? state.combination?.supervisedWeight ?? 1;
  const active = activeHeads(state.settings, state.hasSeen);
  const patchHeads = active.filter((x): x is 'seen' | 'pseudo' | 'residual' => x !== 'normality');
  const { h, w } = raw.maps;
  const p = h * w;

  return feats.map((_, i) => {
    const rawHeads: Partial<Record<HeadName, number>> = {};
    for (const name of active) rawHeads[name] = raw[name][i];
    const perHead: Partial<Record<HeadName, number>> = {};
    for (const [name, v] of Object.entries(rawHeads) as [HeadName, number][]) {
      perHead[name] = sup * (combine === 'calibrated' ? z(v, cal[name]) : v);
    }
    const heat = new Float32Array(p);
    // With the supervised heads off and no other map, their maps still show where to look.
    const mapWeight = sup > 0 ? sup : knn?.patch || pc ? 0 : 1;
    for (const name of patchHeads) {
      const m = raw.maps[name];
      const st = combine === 'calibrated' ? cal[name] : undefined;
      for (let j = 0; j < p; j++)
        heat[j] += mapWeight * (st ? (m[i * p + j] - st.mean) / st.std : m[i * p + j]);
    }
    if (knn) {
      rawHeads.knn = knn.image[i];
      const zi = z(knn.image[i], cal.knn);
      if (knn.patch) {
        const zp = z(knn.patch.score[i], cal.knnPatch);
        perHead.knn = (knnWeight * (zi + zp)) / 2;
        const st = cal.knnPatch;
        if (knn.patch.h === h && knn.patch.w === w) {
          for (let j = 0; j < p; j++) heat[j] += (knnWeight * z(knn.patch.maps[i * p + j], st)) / 2;
        }
      } else {
        perHead.knn = knnWeight * zi;
      }
    }
    if (gaussian) {
      rawHeads.gaussian = gaussian[i];
      perHead.gaussian = gaussianWeight * z(gaussian[i], cal.gaussian);
    }
    if (pc) {
      rawHeads.patchcore = pc.score[i];
      perHead.patchcore = patchcoreWeight * z(pc.score[i], cal.patchcore);
      // Its map (on the finest grid of its layers) resampled onto the heads' grid.
      const pp = pc.h * pc.w;
      const m = resizeMap({ h: pc.h, w: pc.w, c: 1, data: pc.maps.subarray(i * pp, (i + 1) * pp) }, h, w);
      for (let j = 0; j < p; j++) heat[j] += patchcoreWeight * z(m.data[j], cal.patchcore);
    }
    if (global) {
      rawHeads.global = global[i];
      perHead.global = sup * globalWeight * z(global[i], cal.global);
    }
    const total =
      (perHead.global ?? 0) +
      (perHead.gaussian ?? 0) +
      (perHead.patchcore ?? 0) +
      (perHead.seen ?? 0) +
      (perHead.pseudo ?? 0) +
      (perHead.residual ?? 0) -
      (perHead.normality ?? 0) +
      (perHead.knn ?? 0);
    return { total, perHead, raw: rawHeads, heatmap: { h, w, data: heat } };
  });
}
