/**
 * The PatchCore head alone, per bank variant, on the benchmark's splits: test AUC-ROC and what
 * fitting and scoring cost, as ratios to the backbone's own per-image cost in the same run (CPU
 * seconds of this process: its feature workers and onnxruntime's threads included).
 *
 *   npx tsx scripts/bench-patchcore-head.ts --dataset elpv [--seeds 3 --seed-start 0]
 *     [--variants head=128/20000,full=0/0] [--images 24] [--shots 10]
 *
 * A variant is name=embedDim/candidateMax (0: kept whole / no cap); everything else is the
 * head's (PATCHCORE_HEAD_OPTIONS). The bank depends on a seed's training normals alone, so one
 * fit per seed and variant serves the general split and every known class of the hard one
 * (each row: the test split's AUC). Fit = embedding + selection; LOO = the training normals'
 * leave-one-out scores (the head's calibration); scoring = the other images, per image. Both
 * searches are GEMM products (patchCoreScoresAsync).
 */
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { defaultDataRoot, resolveDataset } from '../src-main/data/datasets';
import { makeSplit } from '../src-main/data/splits';
import { backboneSpecFor } from '../src-main/engine/backbone';
import { FeatureSession } from '../src-main/engine/feature-session';
import { aucRoc } from '../src-main/engine/metrics';
import { fitPatchCore, patchCoreScoresAsync } from '../src-main/engine/infer/patchcore';
import {
  PATCHCORE_HEAD_OPTIONS,
  patchCoreHeadMap,
  patchCoreTapLayers,
} from '../src-main/engine/infer/patchcore-head';
import type { ImageFeatures } from '../src-main/engine/types';

const { values } = parseArgs({
  options: {
    dataset: { type: 'string', default: 'bottle' },
    images: { type: 'string', default: '24' },
    seeds: { type: 'string', default: '3' },
    'seed-start': { type: 'string', default: '0' },
    shots: { type: 'string', default: '10' },
    variants: { type: 'string', default: 'head=128/20000,full=0/0' },
  },
});

const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

const variants = values.variants.split(',').map((v) => {
  const [name, dims] = v.split('=');
  const [embedDim, candidateMax] = dims.split('/').map(Number);
  return { name, embedDim, candidateMax };
});
const ds = await resolveDataset(values.dataset, { dataRoot: defaultDataRoot() });
const [tap] = patchCoreTapLayers('mobilenet_v1_0.75');

// The backbone with the tap, nothing cached: the unit of cost.
const empty = await mkdtemp(path.join(os.tmpdir(), 'swan-pc-cost-'));
let backbonePerImage: number;
try {
  const fresh = await FeatureSession.open({ tapLayers: [tap], cacheDir: empty });
  const m = Number(values.images);
  await fresh.ofPaths(ds.items.slice(0, 2).map((it) => it.path)); // workers up, weights loaded
  const c0 = cpu();
  await fresh.ofPaths(ds.items.slice(2, 2 + m).map((it) => it.path));
  backbonePerImage = (cpu() - c0) / m;
  await fresh.close();
} finally {
  await rm(empty, { recursive: true, force: true });
}
console.log(
  `${ds.name}: backbone (with the ${tap} tap) ${backbonePerImage.toFixed(3)} CPU-s per image, load ${os.loadavg()[0].toFixed(1)}`,
);

// Features as the bench gives them to the head: the tap from a one-level session of that layer.
const main = await FeatureSession.open({});
const fine = await FeatureSession.open({
  spec: backboneSpecFor('mobilenet', { inputSize: 224, featureLayer: tap }),
  levels: 1,
});
const a = await main.ofPaths(ds.items.map((it) => it.path));
const b = await fine.ofPaths(ds.items.map((it) => it.path));
await main.close();
await fine.close();
const byPath = new Map<string, ImageFeatures>();
ds.items.forEach((it, i) => {
  if (a[i].features && b[i].features)
    byPath.set(it.path, { ...a[i].features!, taps: { [tap]: b[i].features!.levels[0] } });
});

const shots = Number(values.shots);
const cases = [
  { setting: 'general' as const, knownClass: undefined as string | undefined },
  ...(ds.anomalyClasses.length > 1
    ? ds.anomalyClasses.map((c) => ({ setting: 'hard' as const, knownClass: c }))
    : []),
];
const ratio = (x: number) => (x / backbonePerImage).toFixed(1);
for (
  let seed = Number(values['seed-start']);
  seed < Number(values['seed-start']) + Number(values.seeds);
  seed++
) {
  const trainNormals = makeSplit(ds, { setting: 'general', shots, seed }).trainNormals.filter((it) =>
    byPath.has(it.path),
  );
  const inTrain = new Set(trainNormals.map((it) => it.path));
  const others = ds.items.filter((it) => !inTrain.has(it.path) && byPath.has(it.path));
  const taps = [tap];
  for (const v of variants) {
    const c0 = cpu();
    const trainMaps = trainNormals.map((it) => patchCoreHeadMap(byPath.get(it.path)!, taps));
    const model = fitPatchCore(trainMaps, {
      ...PATCHCORE_HEAD_OPTIONS,
      embedDim: v.embedDim,
      candidateMax: v.candidateMax,
      seed,
    });
    const fitCpu = cpu() - c0;
    const c1 = cpu();
    await patchCoreScoresAsync(
      model,
      trainMaps,
      trainMaps.map((_, i) => i),
    );
    const looCpu = cpu() - c1;
    const c2 = cpu();
    const score = new Map<string, number>();
    for (let s = 0; s < others.length; s += 64) {
      const part = others.slice(s, s + 64);
      const got = await patchCoreScoresAsync(
        model,
        part.map((it) => patchCoreHeadMap(byPath.get(it.path)!, taps)),
      );
      part.forEach((it, i) => score.set(it.path, got.score[i]));
    }
    const scoreCpu = (cpu() - c2) / others.length;
    const aucs = cases.map(({ setting, knownClass }) => {
      const test = makeSplit(ds, { setting, shots, seed, knownClass }).test.filter((it) =>
        score.has(it.path),
      );
      const auc = aucRoc(
        test.map((it) => score.get(it.path)!),
        test.map((it) => it.label),
      );
      return `${knownClass ? `hard/${knownClass}` : 'general'} ${auc.toFixed(4)}`;
    });
    console.log(
      `${ds.name} seed ${seed} ${v.name} (embedDim ${v.embedDim}, candidateMax ${v.candidateMax}): ${aucs.join(', ')}; ` +
        `bank ${model.count} of ${model.from} patches, ${model.dim} dims; fit ${fitCpu.toFixed(1)} CPU-s ` +
        `(${ratio(fitCpu)} backbone images), LOO of ${trainNormals.length} ${looCpu.toFixed(1)} CPU-s (${ratio(looCpu)}), ` +
        `scoring ${scoreCpu.toFixed(3)} CPU-s per image (${ratio(scoreCpu)}x the backbone), load ${os.loadavg()[0].toFixed(1)}`,
    );
  }
}
