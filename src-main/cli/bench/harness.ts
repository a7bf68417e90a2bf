/**
 * The paper's protocol (dra.md) over one data set: seeded splits, training on the training
 * split only, scoring of the test split, AUC-ROC and AP overall and per head, and pixel AUROC of
 * the heatmaps where the data set has masks. Nothing of the test split informs training,
 * calibration or normalisation: a model sees only split.trainNormals, split.trainAnomalies and
 * their pseudo variants; masks are read only to evaluate.
 */
import { performance } from 'node:perf_hooks';
import { makeSplit } from '../../data/splits';
import type { Dataset, DatasetItem, Setting } from '../../data/types';
import { backboneIdOf, backboneSpecFor } from '../../engine/backbone';
import { FeatureSession, type PathFeatures } from '../../engine/feature-session';
import { shapeForImages, type InputShape } from '../../engine/features/geometry';
import { trainFast } from '../../engine/train';
import { trainChosen } from '../../engine/choose';
import { DEFAULT_VALIDATE_FOLDS } from '../../api/defaults';
import { scoreFeaturesPatchCoreAsync, knnBaselineScores } from '../../engine/infer';
import { aucRoc, averagePrecision, headAnomalyScore, meanStd } from '../../engine/metrics';
import type { FeatureMap, HeadName, ImageFeatures, TrainSettings } from '../../engine/types';
import {
  fitPatchCore,
  patchCoreScoresAsync,
  patchEmbedding,
  type PatchCoreOptions,
} from '../../engine/infer/patchcore';
import { patchCoreHeadScoresAsync, patchCoreTapLayers } from '../../engine/infer/patchcore-head';
import {
  partTotal,
  splitParts,
  type CandidateEvidence,
  type PartScore,
  type SelectionEvidence,
} from '../../engine/select';
import type { DraState } from '../../engine/heads/state';
import { MaskReader, pixelAucRoc, type Heatmap, type Mask } from './localisation';
import { isProduct, isTrained, methodLabel, methodSettings, type Method } from './methods';

export interface Stat {
  mean: number;
  std: number;
}

export interface RunResult {
  seed: number;
  knownClass?: string;
  aucRoc: number;
  ap: number;
  perHead: Partial<Record<HeadName, number>>;
  /** Pixel AUROC of the heatmaps, when the data set has masks and the method a heatmap. */
  pixelAucRoc?: number;
  /** swan: the supervised heads' weight its cross-validation chose (engine/select.ts). */
  supervisedWeight?: number;
  /**
   * swan, diagnostic only: each candidate weight's cross-validation evidence beside the test
   * AUC-ROC it would give. Nothing chooses on testAuc; it shows whether the rule picks well.
   */
  candidates?: (CandidateEvidence & { testAuc: number })[];
  /**
   * With BenchHooks.keepParts (`--dump-parts`), diagnostic only: the selection's evidence and the
   * test images' parts at supervised weight 1, for evaluating combination rules offline.
   */
  parts?: { evidence: SelectionEvidence; test: PartScore[] };
  /** Training time; for swan it includes the cross-validation that chooses the weight. */
  trainSeconds: number;
  scoreSeconds: number;
  train: { normals: number; anomalies: number };
  test: { normals: number; anomalies: number };
}

export interface BackboneInfo {
  id: string;
  featureLayer: string;
  inputSize: number;
  /** Level-0 height and width when the data set's images are elongated; absent: square. */
  inputShape?: InputShape;
  levels: number;
}

export interface BenchResult {
  dataset: string;
  setting: Setting;
  shots: number;
  seeds: number;
  seed_start: number;
  method: Method;
  /** The method and any --set override that changed what ran. */
  label: string;
  backend: string;
  backbone: BackboneInfo;
  /** Training settings of a trained method (seed aside: each run has its own). */
  settings?: Omit<TrainSettings, 'seed'>;
  auc_roc: Stat;
  ap: Stat;
  pixel_auc_roc?: Stat;
  per_head: Partial<Record<HeadName, Stat>>;
  per_class: { class: string; auc_roc: Stat; ap: Stat }[];
  runs: RunResult[];
  seconds: { features: number; train: number; score: number; total: number };
  /** Commit the row was measured at, when it differs from its table's (merged tables). */
  commit?: string;
}

export interface BenchHooks {
  log?: (line: string) => void;
  /** Keep each product run's selection evidence and test parts in its RunResult (RunResult.parts). */
  keepParts?: boolean;
  onProgress?: (label: string, done: number, total: number) => void;
}

export interface CaseSpec {
  setting: Setting;
  shots: number;
  seed: number;
  knownClass?: string;
  method: Method;
  /** --set overrides on top of the method's settings. */
  overrides?: Partial<TrainSettings>;
}

/** Known classes a setting iterates over: every anomaly class in the hard setting. */
export function casesOf(ds: Dataset, setting: Setting): (string | undefined)[] {
  return setting === 'hard' ? ds.anomalyClasses.slice() : [undefined];
}

/**
 * PatchCore's input: the level-0 maps of these layers, finest first; 'main' is the benchmark's
 * own session (the DRA feature layer, already extracted), a session its own layer.
 */
export interface PatchCoreSource {
  layers: (FeatureSession | 'main')[];
  options?: Partial<PatchCoreOptions>;
}

/** The layer names of a PatchCore source, finest first. */
export function patchCoreLayerNames(src: PatchCoreSource, main: FeatureSession): string[] {
  return src.layers.map(
    (l) => `${(l === 'main' ? main : l).spec.featureLayer}@${(l === 'main' ? main : l).spec.inputSize}`,
  );
}

export async function closePatchCoreSource(src: PatchCoreSource | undefined): Promise<void> {
  for (const l of src?.layers ?? []) if (l !== 'main') await l.close();
}

interface PatchCoreSeed {
  key: string;
  byPath: Map<string, { score: number; map: Heatmap }>;
  bank: number;
  from: number;
  fitSeconds: number;
}

/** One data set's features (computed once, cached on disk) and the runs over its splits. */
export class BenchDataset {
  private pseudoKey = '';
  private pseudo: ImageFeatures[][] = [];
  private patchMaps: (Map<string, ImageFeatures | null> | 'main')[] | null = null;
  private patchcore: PatchCoreSeed | null = null;
  private readonly masks: MaskReader | null;
  /** Seconds spent computing or reading features (images and pseudo anomalies). */
  featureSeconds = 0;

  private constructor(
    readonly ds: Dataset,
    readonly session: FeatureSession,
    private readonly byPath: Map<string, PathFeatures>,
    private readonly hooks: BenchHooks,
    private readonly patchSource?: PatchCoreSource,
  ) {
    this.masks = ds.items.some((it) => it.mask) ? new MaskReader() : null;
  }

  static async open(
    ds: Dataset,
    session: FeatureSession,
    hooks: BenchHooks = {},
    patchSource?: PatchCoreSource,
  ): Promise<BenchDataset> {
    const t = performance.now();
    const all = await session.ofPaths(
      ds.items.map((it) => it.path),
      (d, n) => hooks.onProgress?.('features', d, n),
    );
    for (const f of all) if (f.error) hooks.log?.(`warning: ${f.error}`);
    const data = new BenchDataset(ds, session, new Map(all.map((f) => [f.path, f])), hooks, patchSource);
    data.featureSeconds += (performance.now() - t) / 1000;
    return data;
  }

  get hasMasks(): boolean {
    return this.masks !== null;
  }

  feat(it: DatasetItem): ImageFeatures | null {
    return this.byPath.get(it.path)?.features ?? null;
  }

  /** Pseudo anomalies of the training normals; the last pool is kept, for the seed's other runs. */
  private async pseudoFor(settings: TrainSettings, normals: DatasetItem[]): Promise<ImageFeatures[][]> {
    const key = JSON.stringify([
      settings.pseudo,
      settings.outlierDir,
      settings.pseudoPoolPerImage,
      settings.seed,
      normals.map((n) => n.path),
    ]);
    if (key === this.pseudoKey) return this.pseudo;
    const t = performance.now();
    this.pseudo = [];
    const got = await this.session.pseudoFor(
      settings,
      normals.map((it) => ({ path: it.path, hash: this.byPath.get(it.path)!.hash! })),
      (d, n) => this.hooks.onProgress?.('pseudo anomalies', d, n),
    );
    for (const w of got.warnings) this.hooks.log?.(`warning: ${w}`);
    this.pseudo = got.pool;
    this.pseudoKey = key;
    this.featureSeconds += (performance.now() - t) / 1000;
    return this.pseudo;
  }

  private patchLayers(it: DatasetItem): FeatureMap[] | null {
    const maps: FeatureMap[] = [];
    for (const src of this.patchMaps!) {
      const f = src === 'main' ? this.feat(it) : src.get(it.path);
      if (!f) return null;
      maps.push(f.levels[0]);
    }
    return maps;
  }

  /**
   * PatchCore of a seed's training normals: the bank is fitted on them alone, then every other
   * image of the data set is scored once; every run of the seed (any setting or shot count: the
   * method uses no labelled defect) reads its test images' scores from there.
   */
  private async loadPatchMaps(): Promise<void> {
    if (this.patchMaps) return;
    if (!this.patchSource) throw new Error('patchcore needs a PatchCoreSource (its feature layers)');
    const t = performance.now();
    const maps: (Map<string, ImageFeatures | null> | 'main')[] = [];
    for (const layer of this.patchSource.layers) {
      if (layer === 'main') {
        maps.push('main');
        continue;
      }
      const got = await layer.ofPaths(
        this.ds.items.map((it) => it.path),
        (d, n) => this.hooks.onProgress?.('patchcore features', d, n),
      );
      maps.push(new Map(got.map((f) => [f.path, f.features])));
    }
    this.patchMaps = maps;
    this.featureSeconds += (performance.now() - t) / 1000;
  }

  /**
   * The features as a session with the PatchCore head's tap (BackboneSpec.tapLayers) gives them
   * in the app: the tap's level-0 map comes from the PatchCore source's session of that layer
   * (same backbone, same input size), so the feature cache of the DRA layer stays as it is.
   * Pseudo anomalies get it on their first variant, the one the cross-validation's stand-ins use.
   */
  private async tapped(
    items: DatasetItem[],
    feats: ImageFeatures[],
    pseudo: ImageFeatures[][],
    settings: TrainSettings,
  ): Promise<{ feats: ImageFeatures[]; pseudo: ImageFeatures[][] }> {
    await this.loadPatchMaps();
    const taps = patchCoreTapLayers(this.session.spec.id);
    const src = this.patchSource!.layers.find(
      (l): l is FeatureSession => l !== 'main' && taps.includes(l.spec.featureLayer),
    );
    if (!src) throw new Error(`the PatchCore head needs a session of ${taps.join(', ')}`);
    const layer = src.spec.featureLayer;
    const maps = this.patchMaps![this.patchSource!.layers.indexOf(src)] as Map<string, ImageFeatures | null>;
    const tap = (f: ImageFeatures, m: ImageFeatures | null | undefined): ImageFeatures => {
      if (!m) throw new Error(`no ${layer} features for an image the heads read`);
      return { ...f, taps: { ...f.taps, [layer]: m.levels[0] } };
    };
    const key = JSON.stringify([layer, settings.pseudo, items.map((n) => n.path)]);
    if (pseudo.length > 0 && this.pseudoTapKey !== key) {
      const t = performance.now();
      this.pseudoTaps = await src.pseudoPool(
        items.map((it) => ({ path: it.path, hash: this.byPath.get(it.path)!.hash! })),
        1,
        (d, n) => this.hooks.onProgress?.('patchcore pseudo anomalies', d, n),
      );
      this.pseudoTapKey = key;
      this.featureSeconds += (performance.now() - t) / 1000;
    }
    return {
      feats: items.map((it, j) => tap(feats[j], maps.get(it.path))),
      pseudo: pseudo.map((pool, j) => pool.map((f, k) => (k === 0 ? tap(f, this.pseudoTaps[j]?.[0]) : f))),
    };
  }

  private pseudoTapKey = '';
  private pseudoTaps: ImageFeatures[][] = [];

  private async patchCoreFor(trainNormals: DatasetItem[], seed: number): Promise<PatchCoreSeed> {
    const key = JSON.stringify([seed, trainNormals.map((n) => n.path)]);
    if (this.patchcore?.key === key) return this.patchcore;
    await this.loadPatchMaps();
    const usable = (it: DatasetItem) => !!this.feat(it) && this.patchLayers(it) !== null;
    const t = performance.now();
    const model = fitPatchCore(
      trainNormals.filter(usable).map((it) => patchEmbedding(this.patchLayers(it)!)),
      { ...this.patchSource!.options, seed },
    );
    const inTrain = new Set(trainNormals.map((n) => n.path));
    const others = this.ds.items.filter((it) => !inTrain.has(it.path) && usable(it));
    const byPath = new Map<string, { score: number; map: Heatmap }>();
    const chunk = 32;
    for (let s = 0; s < others.length; s += chunk) {
      const part = others.slice(s, s + chunk);
      const sc = await patchCoreScoresAsync(
        model,
        part.map((it) => patchEmbedding(this.patchLayers(it)!)),
      );
      const p = sc.h * sc.w;
      part.forEach((it, i) =>
        byPath.set(it.path, {
          score: sc.score[i],
          map: { h: sc.h, w: sc.w, data: sc.maps.slice(i * p, (i + 1) * p) },
        }),
      );
      this.hooks.onProgress?.('patchcore scoring', Math.min(s + chunk, others.length), others.length);
    }
    const fitSeconds = (performance.now() - t) / 1000;
    this.hooks.log?.(
      `${this.ds.name} patchcore seed ${seed}: bank ${model.count} of ${model.from} patches (${model.dim} dims), ` +
        `fit + scoring ${others.length} images ${fitSeconds.toFixed(1)} s`,
    );
    this.patchcore = { key, byPath, bank: model.count, from: model.from, fitSeconds };
    return this.patchcore;
  }

  async run(spec: CaseSpec): Promise<RunResult> {
    const { setting, shots, seed, knownClass, method } = spec;
    const split = makeSplit(this.ds, { setting, shots, seed, knownClass });
    const trainNormals = split.trainNormals.filter((it) => this.feat(it));
    const trainAnomalies = split.trainAnomalies.filter((it) => this.feat(it));
    const test = split.test.filter((it) => this.feat(it));
    let testFeats = test.map((it) => this.feat(it)!);
    const labels = test.map((it) => it.label);
    let normals = trainNormals.map((it) => this.feat(it)!);
    let anomalies = trainAnomalies.map((it) => this.feat(it)!);

    let totals: number[];
    let heatmaps: Heatmap[] | null = null;
    const perHead: Partial<Record<HeadName, number>> = {};
    let trainSeconds = 0;
    let supervisedWeight: number | undefined;
    let candidates: RunResult['candidates'];
    let evidence: SelectionEvidence | undefined;
    let testParts: PartScore[] | undefined;
    let t = performance.now();
    if (method === 'knn') {
      totals = knnBaselineScores(normals, testFeats);
    } else if (method === 'patchcore') {
      const pc = await this.patchCoreFor(trainNormals, seed);
      t = performance.now();
      const got = test.map((it) => pc.byPath.get(it.path)!);
      totals = got.map((g) => g.score);
      heatmaps = got.map((g) => g.map);
      trainSeconds = pc.fitSeconds;
    } else {
      const settings = methodSettings(method, spec.overrides, seed);
      let pseudo = await this.pseudoFor(settings, trainNormals);
      if (settings.patchcoreHead) {
        const n = await this.tapped(trainNormals, normals, pseudo, settings);
        normals = n.feats;
        pseudo = n.pseudo;
        anomalies = (await this.tapped(trainAnomalies, anomalies, [], settings)).feats;
        testFeats = (await this.tapped(test, testFeats, [], settings)).feats;
      }
      t = performance.now();
      // swan trains as the app's retrain does: with its cross-validation, which chooses the
      // supervised heads' weight (engine/choose.ts); the paper's methods train alone.
      const { state } = isProduct(method)
        ? await trainChosen(
            trainNormals.map((it, j) => ({ id: it.path, features: normals[j], pseudo: pseudo[j] })),
            trainAnomalies.map((it, j) => ({
              id: it.path,
              cls: it.cls ?? 'defect',
              features: anomalies[j],
            })),
            settings,
            {
              folds: DEFAULT_VALIDATE_FOLDS,
              onEvidence: this.hooks.keepParts ? (ev) => (evidence = ev) : undefined,
            },
          )
        : { state: await trainFast({ normals, anomalies, pseudo }, settings) };
      if (state.combination) {
        supervisedWeight = state.combination.supervisedWeight;
        this.hooks.log?.(`  choice: ${state.combination.reason}`);
      }
      trainSeconds = (performance.now() - t) / 1000;
      t = performance.now();
      const scores = await scoreFeaturesPatchCoreAsync(state, testFeats);
      if (state.combination)
        ({ candidates, parts: testParts } = await candidateDiagnostic(state, testFeats, scores, labels));
      totals = scores.map((s) => s.total);
      heatmaps = scores.map((s) => s.heatmap);
      const heads = Object.keys(scores[0]?.perHead ?? {}) as HeadName[];
      for (const h of heads) {
        perHead[h] = aucRoc(
          scores.map((s) => headAnomalyScore(h, s.perHead[h] ?? 0)),
          labels,
        );
      }
      // Left out by the project's choice, the PatchCore head is not scored: its AUC alone still is reported.
      if (state.patchcore && perHead.patchcore === undefined)
        perHead.patchcore = aucRoc(
          [...(await patchCoreHeadScoresAsync(state.patchcore, testFeats)).score],
          labels,
        );
    }
    const run: RunResult = {
      seed,
      ...(knownClass ? { knownClass } : {}),
      aucRoc: aucRoc(totals, labels),
      ap: averagePrecision(totals, labels),
      perHead,
      ...(supervisedWeight !== undefined ? { supervisedWeight } : {}),
      ...(candidates ? { candidates } : {}),
      ...(evidence && testParts ? { parts: { evidence, test: testParts } } : {}),
      trainSeconds,
      scoreSeconds: (performance.now() - t) / 1000,
      train: { normals: trainNormals.length, anomalies: trainAnomalies.length },
      test: {
        normals: labels.filter((l) => l === 0).length,
        anomalies: labels.filter((l) => l === 1).length,
      },
    };
    if (heatmaps && this.masks) run.pixelAucRoc = await this.pixelAuc(test, heatmaps);
    this.hooks.log?.(describeRun(this.ds.name, spec, run));
    if (run.candidates) this.hooks.log?.(describeCandidates(run));
    return run;
  }

  private async pixelAuc(test: DatasetItem[], heatmaps: Heatmap[]): Promise<number | undefined> {
    const pairs: { map: Heatmap; mask: Mask }[] = [];
    for (let i = 0; i < test.length; i++) {
      const mask = this.masks!.read(test[i]);
      if (mask) pairs.push({ map: heatmaps[i], mask: await mask });
    }
    return pixelAucRoc(pairs);
  }
}

/**
 * The test AUC-ROC under every candidate of the model's choice (diagnostic only): the supervised
 * part of each test score at weight 1, from the chosen weight's scores (or a rescoring at 1).
 */
async function candidateDiagnostic(
  state: DraState,
  testFeats: ImageFeatures[],
  scores: { perHead: Partial<Record<HeadName, number>> }[],
  labels: number[],
): Promise<{ candidates: (CandidateEvidence & { testAuc: number })[]; parts: PartScore[] }> {
  const c = state.combination!;
  const a = c.supervisedWeight;
  const atOne = a > 0 ? scores : await scoreFeaturesPatchCoreAsync(state, testFeats, { supervisedWeight: 1 });
  const parts = atOne.map((s, i) => {
    const p = splitParts(s.perHead, labels[i] as 0 | 1);
    return a > 0 ? { ...p, supervised: p.supervised / a } : p;
  });
  const candidates = c.candidates.map((x) => ({
    ...x,
    testAuc: aucRoc(
      parts.map((p) => partTotal(p, x.weight)),
      labels,
    ),
  }));
  return { candidates, parts };
}

function describeCandidates(run: RunResult): string {
  const f = (x: number | null | undefined) => (x == null ? '-' : x.toFixed(3));
  return (run.candidates ?? [])
    .map(
      (x) =>
        `  w${x.weight}: seen ${f(x.seenAuc)}` +
        Object.entries(x.unseenAuc)
          .map(([k, v]) => ` ${k} ${f(v)}`)
          .join('') +
        ` mean ${f(x.meanAuc)} ${x.passesGuard ? 'pass' : 'FAIL'} | test ${f(x.testAuc)} (diagnostic)`,
    )
    .join('\n');
}

function describeRun(dataset: string, spec: CaseSpec, run: RunResult): string {
  const cls = run.knownClass ? ` known=${run.knownClass}` : '';
  const px = run.pixelAucRoc === undefined ? '' : ` pixel ${run.pixelAucRoc.toFixed(4)}`;
  const w = run.supervisedWeight === undefined ? '' : ` weight ${run.supervisedWeight}`;
  return (
    `${dataset} ${spec.setting} ${spec.shots}-shot ${spec.method} seed ${run.seed}${cls}: ` +
    `AUC-ROC ${run.aucRoc.toFixed(4)} AP ${run.ap.toFixed(4)}${px}${w} ` +
    `(train ${run.train.normals}+${run.train.anomalies}, test ${run.test.normals}+${run.test.anomalies}, ` +
    `${run.trainSeconds.toFixed(1)} s)`
  );
}

export interface BenchOptions extends BenchHooks {
  dataset: Dataset;
  setting: Setting;
  shots: number;
  seeds: number;
  /** First seed (the defaults were chosen on seeds 0-2: report fresh ones). */
  seedStart?: number;
  inputSize: number;
  /** 'mobilenet' (default) or 'resnet50'. */
  backbone?: string;
  featureLayer?: string;
  method?: Method;
  settings?: Partial<TrainSettings>;
  cacheDir?: string;
  /** Keep the square input even for elongated images. */
  square?: boolean;
}

/**
 * PatchCore's layers: the DRA feature layer (the main session's) and the finer layer of the
 * pair (infer/patchcore-head.ts patchCoreTapLayers: MobileNet's conv_pw_11, ResNet-50's stage 2),
 * the latter in a one-level session of its own.
 */
export async function openPatchCoreSource(
  inputSize: number,
  cacheDir?: string,
  options?: Partial<PatchCoreOptions>,
  backbone = 'mobilenet',
  inputShape?: InputShape,
): Promise<PatchCoreSource> {
  const [fine] = patchCoreTapLayers(backboneIdOf(backbone));
  if (!fine) throw new Error(`PatchCore: no finer layer known for the backbone ${backbone}`);
  const session = await FeatureSession.open({
    spec: backboneSpecFor(backbone, { inputSize, inputShape, featureLayer: fine }),
    levels: 1,
    cacheDir,
  });
  return { layers: [session, 'main'], ...(options ? { options } : {}) };
}

/** Whether these methods read PatchCore's layers: the baseline, or a product method with the PatchCore head on. */
export function usesPatchCoreLayers(methods: readonly Method[], overrides?: Partial<TrainSettings>): boolean {
  return (
    methods.includes('patchcore') ||
    methods.some((m) => isProduct(m) && methodSettings(m, overrides).patchcoreHead === true)
  );
}

export function seedList(start: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start + i);
}

export function backboneInfo(session: FeatureSession): BackboneInfo {
  const { id, featureLayer, inputSize, inputShape } = session.spec;
  return { id, featureLayer, inputSize, ...(inputShape ? { inputShape } : {}), levels: session.levels };
}

export interface BenchSessionOptions {
  backbone?: string;
  inputSize: number;
  featureLayer?: string;
  cacheDir?: string;
  /** Open PatchCore's layers beside each session. */
  patchcore: boolean;
  /** Keep the square input even for elongated images (the comparison of docs/benchmarks/choices.md). */
  square?: boolean;
}

interface OpenSessions {
  session: FeatureSession;
  patch?: PatchCoreSource;
}

/**
 * The feature sessions of a benchmark, one per input shape: a data set of elongated images
 * gets the input the app would choose for a project of them (features/geometry.ts, from the
 * images' sizes alone), every other data set shares the square one.
 */
export class BenchSessions {
  private readonly byShape = new Map<string, Promise<OpenSessions>>();

  constructor(private readonly opts: BenchSessionOptions) {}

  /** The sessions for a data set's images. */
  async for(ds: Dataset): Promise<OpenSessions> {
    const { opts } = this;
    const shape = opts.square
      ? undefined
      : await shapeForImages(
          opts.inputSize,
          ds.items.map((it) => it.path),
        );
    return this.of(shape);
  }

  /** The sessions of one input shape (undefined: square). */
  of(shape: InputShape | undefined): Promise<OpenSessions> {
    const { opts } = this;
    const key = shape ? `${shape.height}x${shape.width}` : 'square';
    let got = this.byShape.get(key);
    if (!got) {
      got = (async () => {
        const session = await FeatureSession.open({
          backbone: opts.backbone,
          inputSize: opts.inputSize,
          inputShape: shape,
          featureLayer: opts.featureLayer,
          cacheDir: opts.cacheDir,
        });
        const patch = opts.patchcore
          ? await openPatchCoreSource(opts.inputSize, opts.cacheDir, undefined, opts.backbone, shape)
          : undefined;
        return { session, ...(patch ? { patch } : {}) };
      })();
      this.byShape.set(key, got);
    }
    return got;
  }

  async close(): Promise<void> {
    for (const got of this.byShape.values()) {
      const { session, patch } = await got.catch(() => ({ session: null, patch: undefined }));
      await session?.close();
      await closePatchCoreSource(patch);
    }
  }
}

/** Says when a data set's input is not square: its numbers are then not the square input's. */
export function logShape(hooks: BenchHooks, ds: Dataset, session: FeatureSession): void {
  const shape = session.spec.inputShape;
  if (shape)
    hooks.log?.(`${ds.name}: input ${shape.width}x${shape.height} (elongated images keep their aspect)`);
}

export async function runBenchmark(opts: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const method = opts.method ?? 'swan';
  const sessions = new BenchSessions({
    ...opts,
    patchcore: usesPatchCoreLayers([method], opts.settings),
  });
  const runs: RunResult[] = [];
  let featureSeconds = 0;
  let session: FeatureSession | undefined;
  try {
    const opened = await sessions.for(opts.dataset);
    session = opened.session;
    const patch = opened.patch;
    opts.log?.(`backend: ${session.backend.description}`);
    logShape(opts, opts.dataset, session);
    const data = await BenchDataset.open(opts.dataset, session, opts, patch);
    for (const knownClass of casesOf(opts.dataset, opts.setting)) {
      for (const seed of seedList(opts.seedStart ?? 0, opts.seeds)) {
        runs.push(
          await data.run({
            setting: opts.setting,
            shots: opts.shots,
            seed,
            knownClass,
            method,
            overrides: opts.settings,
          }),
        );
      }
    }
    featureSeconds = data.featureSeconds;
  } finally {
    await sessions.close();
  }
  return summarise(
    {
      dataset: opts.dataset.name,
      setting: opts.setting,
      shots: opts.shots,
      seedStart: opts.seedStart ?? 0,
      method,
      overrides: opts.settings ?? {},
      backend: session!.backend.description,
      backbone: backboneInfo(session!),
    },
    runs,
    { features: featureSeconds, total: (performance.now() - t0) / 1000 },
  );
}

export interface SummaryContext {
  dataset: string;
  setting: Setting;
  shots: number;
  seedStart: number;
  method: Method;
  overrides: Partial<TrainSettings>;
  backend: string;
  backbone: BackboneInfo;
}

/**
 * Hard setting: each seed's figure is the mean over the known classes (the paper reports
 * the mean of the per-class results); mean and std are then taken over seeds.
 */
export function summarise(
  ctx: SummaryContext,
  runs: RunResult[],
  time: { features: number; total: number },
): BenchResult {
  const seeds = [...new Set(runs.map((r) => r.seed))];
  const perSeed = (pick: (r: RunResult) => number | undefined) =>
    seeds
      .map((s) => runs.filter((r) => r.seed === s).map(pick))
      .filter((v): v is number[] => v.length > 0 && v.every((x) => x !== undefined))
      .map((v) => v.reduce((a, b) => a + b, 0) / v.length);
  const heads = [...new Set(runs.flatMap((r) => Object.keys(r.perHead)))] as HeadName[];
  const per_head: Partial<Record<HeadName, Stat>> = {};
  for (const h of heads) per_head[h] = meanStd(perSeed((r) => r.perHead[h]));
  const classes = [...new Set(runs.map((r) => r.knownClass).filter((c): c is string => !!c))];
  const pixel = perSeed((r) => r.pixelAucRoc);
  const result: BenchResult = {
    dataset: ctx.dataset,
    setting: ctx.setting,
    shots: ctx.shots,
    seeds: seeds.length,
    seed_start: ctx.seedStart,
    method: ctx.method,
    label: methodLabel(ctx.method, ctx.overrides),
    backend: ctx.backend,
    backbone: ctx.backbone,
    auc_roc: meanStd(perSeed((r) => r.aucRoc)),
    ap: meanStd(perSeed((r) => r.ap)),
    per_head,
    per_class: classes.map((c) => {
      const rs = runs.filter((r) => r.knownClass === c);
      return { class: c, auc_roc: meanStd(rs.map((r) => r.aucRoc)), ap: meanStd(rs.map((r) => r.ap)) };
    }),
    runs,
    seconds: {
      features: time.features,
      train: runs.reduce((s, r) => s + r.trainSeconds, 0),
      score: runs.reduce((s, r) => s + r.scoreSeconds, 0),
      total: time.total,
    },
  };
  if (isTrained(ctx.method)) {
    const { seed: _seed, ...settings } = methodSettings(ctx.method, ctx.overrides);
    result.settings = settings;
  }
  if (pixel.length > 0) result.pixel_auc_roc = meanStd(pixel);
  return result;
}
