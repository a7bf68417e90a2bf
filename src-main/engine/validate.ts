/**
 * Held-out metrics for a model version: stratified K-fold cross-validation of the whole
 * fast-mode pipeline on the already-extracted features. Each fold trains the heads exactly
 * as the real model does (trainFast: same settings, a seed derived from the model seed and
 * the fold; its calibration and kNN bank come from the fold's own training normals through
 * finishState) and scores the held-out fold with scoreFeaturesPatchCoreAsync (scoreFeatures
 * with the PatchCore head's search on GEMM), so the combine rule and the calibration are the
 * real model's code path.
 *
 * No leak by construction: a fold's training data are built only from the images outside
 * it, each normal with its own pseudo-anomaly variants; the held-out normals' variants are
 * dropped with them, and the kNN bank (built from the training normals) never holds a
 * held-out image.
 *
 * Metrics are pooled over the out-of-fold scores (scikit-learn's cross_val_predict way):
 * with a handful of defects a per-fold AUC is mostly undefined. The fold models are
 * trained separately, so pooling assumes their score scales agree (they share recipe,
 * calibration and nearly all training images); the estimate is slightly pessimistic, as
 * every fold model saw (K-1)/K of the labels.
 *
 * Few defects: the defects are dealt over the folds like the normals, so with fewer
 * defects than folds some folds hold none out. A fold whose training part has no defect
 * left (e.g. the only labelled defect is held out) trains without the seen head, as
 * trainFast does with zero anomalies: that is what the real model would be for a defect it
 * has never seen, and its seen-head scores are left out of the seen head's AUC (noted).
 */
import { performance } from 'node:perf_hooks';
import type { DraState } from './heads/state';
import type { ManifestValidation } from './model-file';
import { releaseScoringTensors, scoreFeaturesPatchCoreAsync } from './infer';
import { aucRoc, averagePrecision, headAnomalyScore } from './metrics';
import { trainFast, type FastTrainData } from './train';
import { throwIfAborted } from './train/abort';
import type { HeadName, ImageFeatures, ProgressFn, TrainSettings } from './types';
import { EngineError } from './types';
import { Rng } from './util/rng';
import { fitGaussianHead, gaussianApplies } from './infer/gaussian';
import { projectPatchCoreHead, type PatchCoreHeadFit } from './infer/patchcore-head';
import { activeHeads } from './heads/active';
import {
  chooseCombination,
  isUnsupervisedHead,
  MIN_DEFECTS_TO_WEIGH,
  partTotal,
  splitParts,
  type CombinationChoice,
  type PartScore,
  type SelectionEvidence,
} from './select';

export const VALIDATION_METHOD = 'k-fold cross-validation';

export interface ValidationNormal {
  id: string;
  features: ImageFeatures;
  /** Its cut-paste variants (the pseudo-anomaly pool entry of this image). */
  pseudo: ImageFeatures[];
}

export interface ValidationAnomaly {
  id: string;
  cls: string;
  features: ImageFeatures;
}

export interface FoldInfo {
  fold: number;
  trainNormalIds: string[];
  trainAnomalyIds: string[];
  heldOutIds: string[];
  /** The fold's trained state (its kNN bank holds exactly the training normals). */
  state: DraState;
}

export interface StandInInfo {
  kind: 'leave-one-class-out' | 'leave-labels-out' | 'leave-pseudo-out';
  trainNormalIds: string[];
  trainAnomalyIds: string[];
  /** Pseudo-anomaly variants it trained on. */
  trainPseudo: number;
  heldOutIds: string[];
  state: DraState;
}

export interface ValidateOptions {
  /** Requested K; fewer are used when the labels do not allow K (see planFolds). */
  folds: number;
  onProgress?: ProgressFn;
  signal?: AbortSignal;
  /** Sees every fold after it is trained (tests check the folds do not leak). */
  onFold?: (info: FoldInfo) => void;
  /** Sees what each stand-in model of the selection trained on and scored (tests). */
  onStandIn?: (info: StandInInfo) => void;
  /** Sees the selection's evidence before the choice (the bench's --dump-parts, offline rules). */
  onEvidence?: (ev: SelectionEvidence) => void;
  /**
   * Also gather the evidence for the weight of the supervised heads (select.ts) and choose it:
   * the held-out normals' pseudo anomalies are scored too, and one more model per labelled
   * class trains without that class (leave-one-class-out); with one class and two or more
   * defects also one without pseudo anomalies (leave-pseudo-out).
   */
  select?: boolean;
  /**
   * Images no label stands for (the unlabelled pool, or a sample of it): every fold model
   * scores them, so its scores can be put on the final model's scale by images neither saw.
   */
  reference?: readonly { id: string; features: ImageFeatures }[];
}

/** Scores of ValidateOptions.reference: folds[f][j] is fold f's score of ids[j] (empty: fold skipped). */
export interface ReferenceScores {
  ids: string[];
  folds: number[][];
}

export interface OutOfFoldScore {
  label: 'good' | 'defect';
  fold: number;
  total: number;
  /**
   * The total in standard deviations above the fold model's own (in-sample) scores of its
   * training normals. Fold models and the final model each have their own score scale; this
   * one carries over: the app maps it onto the final model by the final model's in-sample
   * good scores (api/threshold.ts), and pools folds on it for the held-out AUC.
   */
  z: number;
  perHead: Partial<Record<HeadName, number>>;
}

export interface ValidationResult {
  method: typeof VALIDATION_METHOD;
  /** Folds actually used (0: validation could not run, see notes). */
  folds: number;
  requestedFolds: number;
  nGood: number;
  nDefect: number;
  seed: number;
  /** Out-of-fold score of every labelled image, by image id. */
  scores: Record<string, OutOfFoldScore>;
  /** Per fold: mean and standard deviation of the fold model's scores of its training normals. */
  foldReference: { mean: number; std: number }[];
  /** Pooled over the out-of-fold scores; null when it cannot be computed (notes say why). */
  aucRoc: number | null;
  ap: number | null;
  perHeadAucRoc: Partial<Record<HeadName, number>>;
  /** Why a metric is missing, or how a fold differed (e.g. trained without labelled defects). */
  notes: string[];
  seconds: number;
  /** The supervised heads' weight chosen on this validation (ValidateOptions.select). */
  combination?: CombinationChoice;
  /** Present when ValidateOptions.reference was given, under the chosen weight. */
  reference?: ReferenceScores;
}

/**
 * Pseudo-anomaly stand-ins scored per fold, at most: they cost a scoring pass each, and a
 * few dozen per fold already give the guard's AUC a resolution of a few thousandths.
 */
export const STAND_INS_PER_FOLD = 64;

/** What trainFast reads, from labelled images with their pseudo-anomaly variants. */
export function trainingData(
  normals: readonly ValidationNormal[],
  anomalies: readonly ValidationAnomaly[],
): FastTrainData {
  return {
    normals: normals.map((n) => n.features),
    anomalies: anomalies.map((a) => a.features),
    pseudo: normals.map((n) => n.pseudo),
  };
}

/** Seed of fold f: derived from the model seed only, so the same seed gives the same folds and models. */
export function foldSeed(seed: number, fold: number): number {
  return (Math.imul((seed ^ 0x2545f491) >>> 0, 0x9e3779b1) ^ Math.imul(fold + 1, 0x85ebca6b)) >>> 1;
}

export interface FoldPlan {
  folds: number;
  /** fold index per normal / per anomaly, in input order. */
  normalFold: number[];
  anomalyFold: number[];
  notes: string[];
}

/**
 * Stratified assignment: normals and defects are shuffled (seeded) and dealt round-robin
 * separately, defects grouped by class first so each class spreads over the folds. K is
 * lowered until every fold's training part keeps at least 2 normals (what training needs);
 * below 2 folds nothing is held out.
 */
export function planFolds(
  nGood: number,
  anomalyClasses: readonly string[],
  requested: number,
  seed: number,
): FoldPlan {
  const notes: string[] = [];
  let k = Math.min(Math.floor(requested), nGood);
  while (k >= 2 && nGood - Math.ceil(nGood / k) < 2) k--;
  if (k < 2) {
    notes.push(
      `cross-validation needs at least 2 folds that each leave 2 good images to train on; ${nGood} good image(s) in at most ${Math.floor(requested)} folds do not`,
    );
    return { folds: 0, normalFold: [], anomalyFold: [], notes };
  }
  if (k < requested) notes.push(`${k} folds instead of ${requested}: only ${nGood} good images`);
  const rng = new Rng(foldSeed(seed, -1));
  const normalFold = new Array<number>(nGood);
  rng.shuffle(Array.from({ length: nGood }, (_, i) => i)).forEach((i, pos) => (normalFold[i] = pos % k));
  const order = rng
    .shuffle(Array.from({ length: anomalyClasses.length }, (_, i) => i))
    .sort((a, b) =>
      anomalyClasses[a] < anomalyClasses[b] ? -1 : anomalyClasses[a] > anomalyClasses[b] ? 1 : 0,
    );
  // Defects start at the first fold with fewer normals, so fold sizes stay even.
  const start = nGood % k;
  const anomalyFold = new Array<number>(anomalyClasses.length);
  order.forEach((i, pos) => (anomalyFold[i] = (start + pos) % k));
  return { folds: k, normalFold, anomalyFold, notes };
}

function metricOrNote(
  name: string,
  scores: number[],
  labels: number[],
  notes: string[],
  fn: (s: number[], l: number[]) => number,
): number | null {
  const pos = labels.filter((l) => l === 1).length;
  if (pos === 0 || pos === labels.length) {
    notes.push(
      `${name} not computed: needs out-of-fold scores of both good and defect images (${labels.length - pos} good, ${pos} defect)`,
    );
    return null;
  }
  return fn(scores, labels);
}

/** Mean and sample standard deviation; a degenerate spread becomes 1 so z stays finite. */
function spread(xs: number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const v = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1);
  const std = Math.sqrt(v);
  return { mean, std: std > 1e-9 ? std : 1 };
}

export async function crossValidate(
  normals: readonly ValidationNormal[],
  anomalies: readonly ValidationAnomaly[],
  settings: TrainSettings,
  opts: ValidateOptions,
): Promise<ValidationResult> {
  const t0 = performance.now();
  if (new Set([...normals, ...anomalies].map((x) => x.id)).size !== normals.length + anomalies.length)
    throw new EngineError('Cross-validation: image ids must be unique.');
  const plan = planFolds(
    normals.length,
    anomalies.map((a) => a.cls),
    opts.folds,
    settings.seed,
  );
  const notes = [...plan.notes];
  const scores: Record<string, OutOfFoldScore> = {};
  const k = plan.folds;
  const foldHeads: HeadName[][] = [];
  const foldReference: { mean: number; std: number }[] = [];
  /** Per fold, its training normals' two parts: the z reference again under the chosen weight. */
  const foldTrainParts: PartScore[][] = [];
  const referenceParts: PartScore[][] = [];
  const pseudoStandIns: PartScore[] = [];
  const pc = await patchCoreOf(normals, settings);
  const foldSettings = pc ? { ...settings, patchcoreHead: false } : settings;
  const projectIndex = new Map(normals.map((n, i) => [n.id, i]));
  const excludeOf = (xs: readonly { id: string }[]) => xs.map((x) => projectIndex.get(x.id) ?? -1);
  const started = performance.now();
  for (let f = 0; f < k; f++) {
    throwIfAborted(opts.signal);
    const done = f;
    const eta = done > 0 ? ((performance.now() - started) / 1000 / done) * (k - done) : undefined;
    opts.onProgress?.({ stage: 'validate', step: f, total: k, etaSeconds: eta });
    const trainN = normals.filter((_, i) => plan.normalFold[i] !== f);
    const trainA = anomalies.filter((_, i) => plan.anomalyFold[i] !== f);
    const heldN = normals.filter((_, i) => plan.normalFold[i] === f);
    const heldA = anomalies.filter((_, i) => plan.anomalyFold[i] === f);
    const data = trainingData(trainN, trainA);
    let state: DraState;
    try {
      state = await trainFast(
        data,
        { ...foldSettings, seed: foldSeed(settings.seed, f) },
        { signal: opts.signal },
      );
    } catch (e) {
      // e.g. settings.heads = ['seen'] with every defect held out: nothing this fold can train.
      if (e instanceof EngineError && !opts.signal?.aborted) {
        notes.push(`fold ${f + 1} skipped (its images have no out-of-fold score): ${e.message}`);
        foldHeads.push([]);
        foldReference.push({ mean: 0, std: 1 });
        foldTrainParts.push([]);
        referenceParts.push([]);
        continue;
      }
      throw e;
    }
    state = withProjectPatchCore(withProjectGaussian(state, trainN, normals.length), pc);
    if (trainA.length === 0 && anomalies.length > 0) {
      notes.push(
        `fold ${f + 1} held out every labelled defect, so it trained on pseudo anomalies only (no seen head)`,
      );
    }
    opts.onFold?.({
      fold: f,
      trainNormalIds: trainN.map((n) => n.id),
      trainAnomalyIds: trainA.map((a) => a.id),
      heldOutIds: [...heldN, ...heldA].map((x) => x.id),
      state,
    });
    const held = [...heldN, ...heldA];
    const s = await scoreFeaturesPatchCoreAsync(
      state,
      held.map((x) => x.features),
      { patchcoreExclude: excludeOf(held) },
    );
    const trainScores = await scoreFeaturesPatchCoreAsync(state, data.normals, {
      patchcoreExclude: excludeOf(trainN),
    });
    const ref = spread(trainScores.map((x) => x.total));
    foldReference.push(ref);
    foldTrainParts.push(trainScores.map((x) => splitParts(x.perHead, 0)));
    referenceParts.push(
      opts.reference?.length
        ? (
            await scoreFeaturesPatchCoreAsync(
              state,
              opts.reference.map((r) => r.features),
            )
          ).map((x) => splitParts(x.perHead, 0))
        : [],
    );
    if (opts.select) {
      // Evenly spread over the held-out normals (their order is already the seeded shuffle's).
      const step = heldN.length / Math.min(heldN.length, STAND_INS_PER_FOLD);
      const sources = Array.from(
        { length: Math.min(heldN.length, STAND_INS_PER_FOLD) },
        (_, j) => heldN[Math.floor(j * step)],
      ).filter((n) => n.pseudo.length > 0);
      // A variant is its normal's image with a patch moved: PatchCore may not match it to that normal's patches.
      const vs = await scoreFeaturesPatchCoreAsync(
        state,
        sources.map((n) => n.pseudo[0]),
        { patchcoreExclude: excludeOf(sources) },
      );
      pseudoStandIns.push(
        ...s.slice(0, heldN.length).map((x) => splitParts(x.perHead, 0)),
        ...vs.map((x) => splitParts(x.perHead, 1)),
      );
    }
    held.forEach((x, i) => {
      scores[x.id] = {
        label: i < heldN.length ? 'good' : 'defect',
        fold: f,
        total: s[i].total,
        z: (s[i].total - ref.mean) / ref.std,
        perHead: { ...s[i].perHead },
      };
    });
    foldHeads.push(Object.keys(s[0]?.perHead ?? {}) as HeadName[]);
  }
  const seen = Object.values(scores).map((x) => splitParts(x.perHead, x.label === 'defect' ? 1 : 0));
  // A weight between the parts means something only when the model has both.
  const bothParts = seen.some((x) => x.supervised !== 0) && seen.some((x) => x.unsupervised !== 0);
  const standIns: StandInContext = { normals, anomalies, plan, settings: foldSettings, opts, pc, excludeOf };
  const evidence: SelectionEvidence | undefined =
    opts.select && k > 0 && bothParts
      ? {
          seen,
          unseen: [
            { kind: 'pseudo' as const, scores: pseudoStandIns },
            ...(await leaveOneClassOut(standIns)),
            ...(await leavePseudoOut(standIns)),
          ],
        }
      : undefined;
  if (evidence) opts.onEvidence?.(evidence);
  const combination = evidence ? chooseCombination(evidence) : undefined;
  // The last fold's weights would otherwise stay cached until the next model is scored.
  releaseScoringTensors();
  if (k > 0) opts.onProgress?.({ stage: 'validate', step: k, total: k });

  if (combination) {
    // The out-of-fold scores as the model will score: its threshold is set on them.
    const a = combination.supervisedWeight;
    const b = combination.patchcoreScale ?? 1;
    foldTrainParts.forEach((ps, f) => {
      if (ps.length) foldReference[f] = spread(ps.map((p) => partTotal(p, a, b)));
    });
    for (const x of Object.values(scores)) reweight(x, a, b, foldReference[x.fold]);
    notes.push(
      `scored with the supervised heads' weight ${combination.supervisedWeight}, chosen on these same out-of-fold scores (so slightly optimistic)`,
    );
  }
  const weight = combination?.supervisedWeight ?? 1;
  const scale = combination?.patchcoreScale ?? 1;
  const reference = opts.reference?.length
    ? {
        ids: opts.reference.map((r) => r.id),
        folds: referenceParts.map((ps) => ps.map((p) => partTotal(p, weight, scale))),
      }
    : undefined;
  const entries = Object.values(scores);
  const labels = entries.map((e) => (e.label === 'defect' ? 1 : 0));
  const aucRocValue = metricOrNote(
    'AUC-ROC',
    entries.map((e) => e.total),
    labels,
    notes,
    aucRoc,
  );
  const ap =
    aucRocValue === null
      ? null
      : averagePrecision(
          entries.map((e) => e.total),
          labels,
        );
  const perHeadAucRoc: Partial<Record<HeadName, number>> = {};
  if (aucRocValue !== null) {
    const heads = [...new Set(foldHeads.flat())];
    for (const h of heads) {
      const withHead = entries.filter((e) => e.perHead[h] !== undefined);
      const missingFolds = foldHeads.flatMap((hs, f) => (hs.length && !hs.includes(h) ? [f + 1] : []));
      const v = metricOrNote(
        `${h} head AUC-ROC`,
        withHead.map((e) => headAnomalyScore(h, e.perHead[h]!)),
        withHead.map((e) => (e.label === 'defect' ? 1 : 0)),
        notes,
        aucRoc,
      );
      if (v === null) continue;
      perHeadAucRoc[h] = v;
      if (missingFolds.length)
        notes.push(`${h} head AUC-ROC leaves out fold(s) ${missingFolds.join(', ')}, trained without it`);
    }
  }
  return {
    method: VALIDATION_METHOD,
    folds: k,
    requestedFolds: opts.folds,
    nGood: normals.length,
    nDefect: anomalies.length,
    seed: settings.seed,
    scores,
    foldReference,
    aucRoc: aucRocValue,
    ap,
    perHeadAucRoc,
    notes,
    seconds: (performance.now() - t0) / 1000,
    ...(combination ? { combination } : {}),
    ...(reference ? { reference } : {}),
  };
}

/**
 * A fold trains on fewer normals than the project: when the project's model has a Gaussian
 * head and the fold's count alone would not fit one, it is fitted anyway (shrinkage keeps it
 * well posed), so the fold's scores are those of the heads the model has.
 */
function withProjectGaussian(
  state: DraState,
  trainN: readonly ValidationNormal[],
  projectNormals: number,
): DraState {
  const dim = trainN[0]?.features.levels[0]?.c ?? 0;
  if (state.gaussian || !state.settings.gaussianHead || !gaussianApplies(projectNormals, dim)) return state;
  const fit = fitGaussianHead(
    trainN.map((n) => n.features),
    undefined,
    projectNormals,
  );
  return { ...state, gaussian: fit.state, calibration: { ...state.calibration, gaussian: fit.calibration } };
}

/**
 * The project's PatchCore head when the settings have one (and there are good images enough):
 * every fold shares it instead of fitting its own (the costliest fit of a retrain), its held-out
 * normals scored without their own patches, so their PatchCore scores are still out of fold.
 */
async function patchCoreOf(
  normals: readonly ValidationNormal[],
  settings: TrainSettings,
): Promise<PatchCoreHeadFit | undefined> {
  return settings.patchcoreHead && normals.length >= 2
    ? projectPatchCoreHead(
        normals.map((n) => n.features),
        settings.seed,
      )
    : undefined;
}

function withProjectPatchCore(state: DraState, pc: PatchCoreHeadFit | undefined): DraState {
  return pc
    ? { ...state, patchcore: pc.state, calibration: { ...state.calibration, patchcore: pc.calibration } }
    : state;
}

/**
 * Multiplies the supervised heads' contributions by `a` and the PatchCore head's by `b`, and the
 * total and its z with them.
 */
function reweight(x: OutOfFoldScore, a: number, b: number, ref: { mean: number; std: number }): void {
  const parts = splitParts(x.perHead, 0);
  for (const h of Object.keys(x.perHead) as HeadName[]) {
    if (h === 'patchcore') x.perHead[h]! *= b;
    else if (!isUnsupervisedHead(h)) x.perHead[h]! *= a;
  }
  x.total = partTotal(parts, a, b);
  x.z = (x.total - ref.mean) / ref.std;
}

/** What the stand-in models of the selection share: the project's images, folds and settings. */
interface StandInContext {
  normals: readonly ValidationNormal[];
  anomalies: readonly ValidationAnomaly[];
  plan: FoldPlan;
  settings: TrainSettings;
  opts: ValidateOptions;
  pc?: PatchCoreHeadFit;
  /** Per image, the project normal whose patches PatchCore leaves out (-1: none). */
  excludeOf: (xs: readonly { id: string }[]) => number[];
}

/**
 * A stand-in model: trained on `data` (from trainN and trainA) with the project's Gaussian and
 * PatchCore heads, shown to onStandIn; undefined when the settings leave it nothing to train.
 */
async function standInModel(
  ctx: StandInContext,
  kind: StandInInfo['kind'],
  trainN: readonly ValidationNormal[],
  trainA: readonly ValidationAnomaly[],
  data: FastTrainData,
  settings: TrainSettings,
  heldOutIds: string[],
): Promise<DraState | undefined> {
  throwIfAborted(ctx.opts.signal);
  let trained: DraState;
  try {
    trained = await trainFast(data, settings, { signal: ctx.opts.signal });
  } catch (e) {
    // e.g. settings.heads = ['seen'] and no defect left to train it on.
    if (e instanceof EngineError && trainA.length === 0 && !ctx.opts.signal?.aborted) return undefined;
    throw e;
  }
  const state = withProjectPatchCore(withProjectGaussian(trained, trainN, ctx.normals.length), ctx.pc);
  ctx.opts.onStandIn?.({
    kind,
    trainNormalIds: trainN.map((x) => x.id),
    trainAnomalyIds: trainA.map((x) => x.id),
    trainPseudo: data.pseudo.flat().length,
    heldOutIds,
    state,
  });
  return state;
}

/** Scores with PatchCore kept off each image's own patches (a variant's: its source image's). */
async function scoreStandIns(
  ctx: StandInContext,
  state: DraState,
  images: readonly { features: ImageFeatures; source: { id: string } }[],
): ReturnType<typeof scoreFeaturesPatchCoreAsync> {
  return scoreFeaturesPatchCoreAsync(
    state,
    images.map((x) => x.features),
    { patchcoreExclude: ctx.excludeOf(images.map((x) => x.source)) },
  );
}

/**
 * Stand-ins for a defect kind nobody labelled: for each labelled class, a model trained without
 * it (and without one fold of normals) scores that class's defects and the held-out normals.
 * With one class labelled that model trains on normals and pseudo anomalies only (no seen or
 * global head; kind leave-labels-out): the labelled defects are a real kind its heads never saw.
 */
async function leaveOneClassOut(
  ctx: StandInContext,
): Promise<{ kind: 'leave-one-class-out' | 'leave-labels-out'; scores: PartScore[] }[]> {
  const { normals, anomalies, plan, settings } = ctx;
  const classes = [...new Set(anomalies.map((a) => a.cls))].sort();
  // One class and one defect: that defect's rank alone is too little to weigh on (select.ts).
  if (classes.length === 0 || (classes.length === 1 && anomalies.length < MIN_DEFECTS_TO_WEIGH)) return [];
  // With one class its model trains on no labelled defect at all.
  const kind = classes.length === 1 ? ('leave-labels-out' as const) : ('leave-one-class-out' as const);
  const scores: PartScore[] = [];
  for (const [c, cls] of classes.entries()) {
    const f = c % plan.folds;
    const trainN = normals.filter((_, i) => plan.normalFold[i] !== f);
    const heldN = normals.filter((_, i) => plan.normalFold[i] === f);
    const trainA = anomalies.filter((a) => a.cls !== cls);
    const heldA = anomalies.filter((a) => a.cls === cls);
    const held = [...heldN, ...heldA];
    const state = await standInModel(
      ctx,
      kind,
      trainN,
      trainA,
      trainingData(trainN, trainA),
      { ...settings, seed: foldSeed(settings.seed, plan.folds + c) },
      held.map((x) => x.id),
    );
    if (!state) return [];
    const s = await scoreStandIns(
      ctx,
      state,
      held.map((x) => ({ features: x.features, source: x })),
    );
    scores.push(...s.map((x, i) => splitParts(x.perHead, i < heldN.length ? 0 : 1)));
  }
  return [{ kind, scores }];
}

/**
 * With one defect class labelled, the fold models' pseudo anomalies are a kind their heads
 * trained on (the pseudo head learns cut-paste), and leave-labels-out's model has no head
 * that learnt from labels: neither shows how the heads fitted to the labelled class rank a kind
 * they never saw. This stand-in does: a model trained on the labelled defects without any pseudo
 * anomaly (no pseudo head) scores held-out normals against their cut-paste variants. Nothing
 * with two or more classes (leave-one-class-out covers them) or fewer than two defects.
 */
async function leavePseudoOut(
  ctx: StandInContext,
): Promise<{ kind: 'leave-pseudo-out'; scores: PartScore[] }[]> {
  const { normals, anomalies, plan, settings } = ctx;
  if (new Set(anomalies.map((a) => a.cls)).size !== 1 || anomalies.length < MIN_DEFECTS_TO_WEIGH) return [];
  const heads = activeHeads(settings, true).filter((h) => h !== 'pseudo');
  if (heads.length === 0) return [];
  // Another fold of normals than leave-labels-out's (fold 0), so the two do not share them.
  const f = 1 % plan.folds;
  const trainN = normals.filter((_, i) => plan.normalFold[i] !== f);
  const heldN = normals.filter((_, i) => plan.normalFold[i] === f);
  const n = Math.min(heldN.length, STAND_INS_PER_FOLD * plan.folds);
  const sources = Array.from({ length: n }, (_, j) => heldN[Math.floor((j * heldN.length) / n)]).filter(
    (x) => x.pseudo.length > 0,
  );
  if (sources.length === 0) return [];
  const state = await standInModel(
    ctx,
    'leave-pseudo-out',
    trainN,
    anomalies,
    { ...trainingData(trainN, anomalies), pseudo: trainN.map(() => []) },
    { ...settings, heads, seed: foldSeed(settings.seed, plan.folds + 1) },
    heldN.map((x) => x.id),
  );
  if (!state) return [];
  const s = await scoreStandIns(ctx, state, [
    ...heldN.map((x) => ({ features: x.features, source: x })),
    ...sources.map((x) => ({ features: x.pseudo[0], source: x })),
  ]);
  return [
    { kind: 'leave-pseudo-out', scores: s.map((x, i) => splitParts(x.perHead, i < heldN.length ? 0 : 1)) },
  ];
}

/** The numbers for a model manifest's metrics (flat, numbers only; method and notes go elsewhere). */
export function validationMetrics(v: ValidationResult): Record<string, number> {
  const out: Record<string, number> = { folds: v.folds, n_good: v.nGood, n_defect: v.nDefect };
  if (v.aucRoc !== null) out.auc_roc = v.aucRoc;
  if (v.ap !== null) out.ap = v.ap;
  for (const [h, x] of Object.entries(v.perHeadAucRoc)) out[`auc_roc_${h}`] = x;
  return out;
}

/** What the model file keeps of a validation: how it was done and every out-of-fold score. */
export function manifestValidation(v: ValidationResult): ManifestValidation {
  return {
    method: v.method,
    folds: v.folds,
    nGood: v.nGood,
    nDefect: v.nDefect,
    seed: v.seed,
    notes: v.notes,
    outOfFold: Object.fromEntries(
      Object.entries(v.scores).map(([id, s]) => [
        id,
        {
          label: s.label,
          fold: s.fold,
          total: s.total,
          z: s.z,
          perHead: s.perHead as Record<string, number>,
        },
      ]),
    ),
    ...(v.reference ? { reference: v.reference } : {}),
  };
}
