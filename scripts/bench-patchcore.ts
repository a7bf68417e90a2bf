/**
 * PatchCore variants on the benchmark's splits (general setting, the 10-shot test set; PatchCore
 * itself uses no labelled defect): which layers, which input size, how large a coreset.
 *
 *   npx tsx scripts/bench-patchcore.ts --datasets bottle,kolektorsdd --layers conv_pw_11_relu,conv_pw_13_relu \
 *     [--input 224] [--seeds 3] [--seed-start 100] [--ratio 0.1] [--max 2048] [--projection 128] \
 *     [--embed 0] [--candidates 0]
 *
 * --embed 128 --candidates 20000 --max 2048 is the product head's bank (infer/patchcore-head.ts).
 *
 * Each layer is extracted at --input (one level, cached). Prints image and pixel AUROC per data
 * set and the fit + scoring time next to the features' time, from the same run.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { defaultDataRoot, resolveDataset } from '../src-main/data/datasets';
import { defaultBackboneSpec, MOBILENET_FEATURE_LAYER } from '../src-main/engine/backbone';
import { FeatureSession } from '../src-main/engine/feature-session';
import {
  BenchDataset,
  closePatchCoreSource,
  seedList,
  summarise,
  backboneInfo,
  type PatchCoreSource,
} from '../src-main/cli/bench/harness';

const { values } = parseArgs({
  options: {
    datasets: { type: 'string', default: 'bottle,kolektorsdd' },
    layers: { type: 'string', default: 'conv_pw_11_relu,conv_pw_13_relu' },
    input: { type: 'string', default: '224' },
    seeds: { type: 'string', default: '3' },
    'seed-start': { type: 'string', default: '100' },
    ratio: { type: 'string', default: '0.1' },
    max: { type: 'string', default: '2048' },
    projection: { type: 'string', default: '128' },
    embed: { type: 'string', default: '0' },
    candidates: { type: 'string', default: '0' },
  },
});

const input = Number(values.input);
const layers = values.layers.split(',');
const session = await FeatureSession.open({ inputSize: 224 });
const source: PatchCoreSource = {
  // The DRA layer at 224 is the main session's level 0, already cached.
  layers: await Promise.all(
    layers.map((l) =>
      l === MOBILENET_FEATURE_LAYER && input === 224
        ? ('main' as const)
        : FeatureSession.open({ spec: defaultBackboneSpec(input, l), levels: 1 }),
    ),
  ),
  options: {
    coresetRatio: Number(values.ratio),
    coresetMax: Number(values.max),
    projectionDim: Number(values.projection),
    embedDim: Number(values.embed),
    candidateMax: Number(values.candidates),
  },
};
try {
  for (const name of values.datasets.split(',')) {
    const ds = await resolveDataset(name, { dataRoot: defaultDataRoot() });
    const data = await BenchDataset.open(ds, session, {}, source);
    const runs = [];
    for (const seed of seedList(Number(values['seed-start']), Number(values.seeds)))
      runs.push(await data.run({ setting: 'general', shots: 10, seed, method: 'patchcore' }));
    const r = summarise(
      {
        dataset: ds.name,
        setting: 'general',
        shots: 10,
        seedStart: Number(values['seed-start']),
        method: 'patchcore',
        overrides: {},
        backend: session.backend.description,
        backbone: backboneInfo(session),
      },
      runs,
      { features: data.featureSeconds, total: 0 },
    );
    const px = r.pixel_auc_roc
      ? ` pixel ${r.pixel_auc_roc.mean.toFixed(3)} ± ${r.pixel_auc_roc.std.toFixed(3)}`
      : '';
    console.log(
      `${ds.name} layers ${layers.join('+')} @${input} ratio ${values.ratio} max ${values.max} embed ${values.embed} candidates ${values.candidates}: ` +
        `AUC-ROC ${r.auc_roc.mean.toFixed(3)} ± ${r.auc_roc.std.toFixed(3)}${px} ` +
        `(fit+score ${r.seconds.train.toFixed(0)} s, features ${data.featureSeconds.toFixed(0)} s, load ${os.loadavg()[0].toFixed(1)})`,
    );
  }
} finally {
  await session.close();
  await closePatchCoreSource(source);
}
