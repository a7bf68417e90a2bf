/**
 * The paper's protocol (dra.md) over one data set: seeded splits, fast-mode training on the
 * training split only, scoring of the test split, AUC-ROC and AP overall and per head.
 * Nothing of the test split informs training, calibration or normalisation: the model
 * sees only split.trainNormals, split.trainAnomalies and their pseudo variants.
 */
import { performance } from 'node:perf_hooks';
import { makeSplit } from '../../data/splits';
import type { Dataset, DatasetItem, ProtocolSplit, Setting } from '../../data/types';
import { FeatureSession } from '../../engine/feature-session';
import { resolveSettings } from '../../engine/settings';
import { trainFast } from '../../engine/train';
import { scoreFeatures, knnBaselineScores } from '../../engine/infer';
import { aucRoc, averagePrecision, headAnomalyScore, meanStd } from '../../engine/metrics';
import type { HeadName, ImageFeatures, TrainSettings } from '../../engine/types';

export type Baseline = 'devnet' | 'knn';

export interface BenchOptions {
  dataset: Dataset;
  setting: Setting;
  shots: number;
  seeds: number;
  inputSize: number;
  featureLayer?: string;
  baseline?: Baseline;
  settings?: Partial<TrainSettings>;
  cacheDir?: string;
  log?: (line: string) => void;
  onProgress?: (label: string, done: number, total: number) => void;
}

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
  trainSeconds: number;
}

export interface BenchResult {
  dataset: string;
  setting: Setting;
  shots: number;
  seeds: number;
  method: string;
  backend: string;
  auc_roc: Stat;
  ap: Stat;
  per_head: Partial<Record<HeadName, Stat>>;
  per_class: { class: string; auc_roc: Stat; ap: Stat }[];
  runs: RunResult[];
  seconds: { features: number; train: number; score: number; total: number };
}

export async function runBenchmark(opts: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  const ds = opts.dataset;
  const classes = opts.setting === 'hard' ? ds.anomalyClasses : [undefined];
  const session = await FeatureSession.open({
    inputSize: opts.inputSize,
    featureLayer: opts.featureLayer,
    cacheDir: opts.cacheDir,
  });
  const seconds = { features: 0, train: 0, score: 0, total: 0 };
  const runs: RunResult[] = [];
  try {
    log(`backend: ${session.backend.description}`);
    // Features of every image once (cached on disk); each split then picks its own.
    let t = performance.now();
    const all = await session.ofPaths(
      ds.items.map((it) => it.path),
      (d, n) => opts.onProgress?.('features', d, n),
    );
    seconds.features += (performance.now() - t) / 1000;
    const byPath = new Map(all.map((f) => [f.path, f]));
    for (const f of all) if (f.error) log(`warning: ${f.error}`);
    const feat = (it: DatasetItem) => byPath.get(it.path)?.features ?? null;

    for (const knownClass of classes) {
      for (let seed = 0; seed < opts.seeds; seed++) {
        const split = makeSplit(ds, { setting: opts.setting, shots: opts.shots, seed, knownClass });
        const settings = resolveSettings({ ...opts.settings, seed });
        const trainNormals = split.trainNormals.filter((it) => feat(it));
        const test = split.test.filter((it) => feat(it));

        t = performance.now();
        let pseudo: ImageFeatures[][] = [];
        if (opts.baseline !== 'knn') {
          const got = await session.pseudoFor(
            settings,
            trainNormals.map((it) => ({ path: it.path, hash: byPath.get(it.path)!.hash! })),
            (d, n) => opts.onProgress?.('pseudo anomalies', d, n),
          );
          pseudo = got.pool;
          for (const w of got.warnings) log(`warning: ${w}`);
        }
        seconds.features += (performance.now() - t) / 1000;

        const trainData = {
          normals: trainNormals.map((it) => feat(it)!),
          anomalies: split.trainAnomalies.filter((it) => feat(it)).map((it) => feat(it)!),
          pseudo,
        };
        const testFeats = test.map((it) => feat(it)!);
        const labels = test.map((it) => it.label);

        let totals: number[];
        const perHead: Partial<Record<HeadName, number>> = {};
        let trainSeconds = 0;
        if (opts.baseline === 'knn') {
          t = performance.now();
          totals = knnBaselineScores(trainData.normals, testFeats);
          seconds.score += (performance.now() - t) / 1000;
        } else {
          const runSettings: TrainSettings =
            opts.baseline === 'devnet'
              ? { ...settings, heads: ['seen'], knnHead: false, gaussianHead: false, globalHead: false }
              : settings;
          t = performance.now();
          const state = await trainFast(trainData, runSettings);
          trainSeconds = (performance.now() - t) / 1000;
          seconds.train += trainSeconds;
          t = performance.now();
          const scores = scoreFeatures(state, testFeats);
          seconds.score += (performance.now() - t) / 1000;
          totals = scores.map((s) => s.total);
          const heads = Object.keys(scores[0]?.perHead ?? {}) as HeadName[];
          for (const h of heads) {
            perHead[h] = aucRoc(
              scores.map((s) => headAnomalyScore(h, s.perHead[h] ?? 0)),
              labels,
            );
          }
        }
        const run: RunResult = {
          seed,
          knownClass,
          aucRoc: aucRoc(totals, labels),
          ap: averagePrecision(totals, labels),
          perHead,
          trainSeconds,
        };
        runs.push(run);
        log(describeRun(run, split));
      }
    }
  } finally {
    await session.close();
  }
  seconds.total = (performance.now() - t0) / 1000;
  return summarise(opts, runs, seconds, session.backend.description);
}

function describeRun(run: RunResult, split: ProtocolSplit): string {
  const cls = run.knownClass ? ` known=${run.knownClass}` : '';
  return (
    `seed ${run.seed}${cls}: AUC-ROC ${run.aucRoc.toFixed(4)} AP ${run.ap.toFixed(4)} ` +
    `(train ${split.trainNormals.length}+${split.trainAnomalies.length}, test ${split.test.length}, ${run.trainSeconds.toFixed(1)} s)`
  );
}

/**
 * Hard setting: each seed's figure is the mean over the known classes (the paper reports
 * the mean of the per-class results); mean and std are then taken over seeds.
 */
function summarise(
  opts: BenchOptions,
  runs: RunResult[],
  seconds: BenchResult['seconds'],
  backend: string,
): BenchResult {
  const seeds = [...new Set(runs.map((r) => r.seed))];
  const perSeed = (pick: (r: RunResult) => number | undefined) =>
    seeds
      .map((s) => runs.filter((r) => r.seed === s).map(pick))
      .filter((v): v is number[] => v.every((x) => x !== undefined))
      .map((v) => v.reduce((a, b) => a + b, 0) / v.length);
  const heads = [...new Set(runs.flatMap((r) => Object.keys(r.perHead)))] as HeadName[];
  const per_head: Partial<Record<HeadName, Stat>> = {};
  for (const h of heads) per_head[h] = meanStd(perSeed((r) => r.perHead[h]));
  const classes = [...new Set(runs.map((r) => r.knownClass).filter((c): c is string => !!c))];
  return {
    dataset: opts.dataset.name,
    setting: opts.setting,
    shots: opts.shots,
    seeds: opts.seeds,
    method: opts.baseline ?? 'dra',
    backend,
    auc_roc: meanStd(perSeed((r) => r.aucRoc)),
    ap: meanStd(perSeed((r) => r.ap)),
    per_head,
    per_class: classes.map((c) => {
      const rs = runs.filter((r) => r.knownClass === c);
      return { class: c, auc_roc: meanStd(rs.map((r) => r.aucRoc)), ap: meanStd(rs.map((r) => r.ap)) };
    }),
    runs,
    seconds,
  };
}
