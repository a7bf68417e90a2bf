import { makeSplit } from '../../data/splits';
import type { Setting } from '../../data/types';
import { trainModel } from '../../engine';
import { CliError } from '../cli-error';
import { progressBar } from '../progress';
import { openDataset, outlierSettings, parseSettingOverrides, type DataOptions } from './shared';

interface TrainOptions extends DataOptions {
  data: string;
  shots: number;
  seed: number;
  setting: string;
  knownClass?: string;
  input: string;
  backbone: string;
  mode: 'fast' | 'full';
  knn: boolean;
  featureLayer?: string;
  set?: string[];
  outliers?: string;
  validate: number;
  out: string;
}

/** Trains on the protocol training split of a data set (its test split stays unseen). */
export async function runTrain(opts: TrainOptions): Promise<void> {
  if (opts.setting !== 'general' && opts.setting !== 'hard')
    throw new CliError('--setting must be general or hard.');
  const ds = await openDataset(opts.data, opts);
  const setting = opts.setting as Setting;
  if (setting === 'hard' && !opts.knownClass) {
    throw new CliError(`--setting hard needs --known-class (one of: ${ds.anomalyClasses.join(', ')}).`);
  }
  const split = makeSplit(ds, { setting, shots: opts.shots, seed: opts.seed, knownClass: opts.knownClass });
  const bar = progressBar('train');
  let stage = '';
  const result = await trainModel({
    normals: split.trainNormals.map((it) => ({ id: it.path, path: it.path })),
    anomalies: split.trainAnomalies.map((it) => ({ id: it.path, path: it.path, cls: it.cls })),
    outDir: opts.out,
    inputSize: Number(opts.input) as 224 | 448,
    backbone: opts.backbone,
    featureLayer: opts.featureLayer,
    settings: {
      ...parseSettingOverrides(opts.set),
      ...outlierSettings(opts.outliers),
      seed: opts.seed,
      mode: opts.mode,
      knnHead: opts.knn,
    },
    validateFolds: opts.validate,
    onProgress: (p) => {
      if (p.stage !== stage) {
        bar.stop();
        stage = p.stage;
      }
      bar.update(p.step, p.total);
    },
  }).finally(() => bar.stop());
  for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
  const s = result.seconds;
  console.log(`backend: ${result.backend}`);
  console.log(`backbone runtime: ${result.runtime}`);
  console.log(
    `trained on ${split.trainNormals.length} good + ${split.trainAnomalies.length} defect images -> ${result.modelDir}`,
  );
  const v = result.validation;
  if (v) {
    const how = `${v.folds}-fold cross-validation on ${v.nGood} good / ${v.nDefect} defect images`;
    if (v.aucRoc !== null && v.ap !== null) {
      console.log(`held-out (${how}): AUC-ROC ${v.aucRoc.toFixed(4)}, AP ${v.ap.toFixed(4)}`);
      const heads = Object.entries(v.perHeadAucRoc).map(([h, x]) => `${h} ${x.toFixed(4)}`);
      if (heads.length) console.log(`held-out AUC-ROC per head: ${heads.join(', ')}`);
    } else {
      console.log(`held-out metrics not measured (${v.folds > 0 ? how : 'no folds'})`);
    }
    for (const n of v.notes) console.log(`  note: ${n}`);
    if (v.combination)
      console.log(`supervised heads' weight ${v.combination.supervisedWeight}: ${v.combination.reason}`);
  }
  console.log(
    `seconds: features ${s.features.toFixed(2)}, train ${s.train.toFixed(2)}` +
      (s.validate !== undefined ? `, validate ${s.validate.toFixed(2)}` : '') +
      `, save ${s.save.toFixed(2)}, total ${s.total.toFixed(2)}`,
  );
}
