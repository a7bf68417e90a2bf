/**
 * What the PatchCore head costs, as ratios to the backbone's own cost in the same run (CPU
 * seconds of this process, its feature workers included):
 *
 *   npx tsx scripts/bench-patchcore-head.ts [--dataset bottle] [--images 24]
 *
 * 1. the backbone with the head's tap: --images images extracted into an empty cache folder;
 * 2. the head fitted on the data set's training normals (features from the shared cache, with
 *    the tap from a one-level session of that layer, as the benchmark does);
 * 3. the head scoring the other images.
 */
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { defaultDataRoot, resolveDataset } from '../src-main/data/datasets';
import { backboneSpecFor } from '../src-main/engine/backbone';
import { FeatureSession } from '../src-main/engine/feature-session';
import {
  fitPatchCoreHead,
  patchCoreHeadScores,
  patchCoreTapLayers,
} from '../src-main/engine/infer/patchcore-head';
import type { ImageFeatures } from '../src-main/engine/types';

const { values } = parseArgs({
  options: {
    dataset: { type: 'string', default: 'bottle' },
    images: { type: 'string', default: '24' },
  },
});

const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

const ds = await resolveDataset(values.dataset, { dataRoot: defaultDataRoot() });
const normals = ds.items.filter((it) => it.label === 0);
const trainN = normals.slice(0, Math.round(normals.length * 0.75));
const others = ds.items.filter((it) => !trainN.includes(it));
const [tap] = patchCoreTapLayers('mobilenet_v1_0.75');

// 1. Backbone with the tap, nothing cached.
const empty = await mkdtemp(path.join(os.tmpdir(), 'swan-pc-cost-'));
let backbonePerImage: number;
try {
  const fresh = await FeatureSession.open({ tapLayers: [tap], cacheDir: empty });
  const m = Number(values.images);
  await fresh.ofPaths(others.slice(0, 2).map((it) => it.path)); // workers up, weights loaded
  const c0 = cpu();
  await fresh.ofPaths(others.slice(2, 2 + m).map((it) => it.path));
  backbonePerImage = (cpu() - c0) / m;
  await fresh.close();
} finally {
  await rm(empty, { recursive: true, force: true });
}

// 2-3. The head on cached features.
const main = await FeatureSession.open({});
const fine = await FeatureSession.open({
  spec: backboneSpecFor('mobilenet', { inputSize: 224, featureLayer: tap }),
  levels: 1,
});
const withTap = async (items: typeof ds.items): Promise<ImageFeatures[]> => {
  const a = await main.ofPaths(items.map((it) => it.path));
  const b = await fine.ofPaths(items.map((it) => it.path));
  return a.map((f, i) => ({ ...f.features!, taps: { [tap]: b[i].features!.levels[0] } }));
};
const trainF = await withTap(trainN);
const otherF = await withTap(others);
const c1 = cpu();
const fit = fitPatchCoreHead(trainF, 0);
const fitCpu = cpu() - c1;
const c2 = cpu();
patchCoreHeadScores(fit.state, otherF);
const scoreCpu = (cpu() - c2) / otherF.length;
await main.close();
await fine.close();
console.log(
  `${ds.name}: backbone (with the ${tap} tap) ${backbonePerImage.toFixed(3)} CPU-s per image; ` +
    `PatchCore head fit on ${trainF.length} normals ${fitCpu.toFixed(1)} CPU-s ` +
    `(${(fitCpu / backbonePerImage).toFixed(0)} backbone images; bank ${fit.state.count} of ${fit.state.from} patches, ${fit.state.dim} dims), ` +
    `scoring ${scoreCpu.toFixed(3)} CPU-s per image (${(scoreCpu / backbonePerImage).toFixed(2)}x the backbone), load ${os.loadavg()[0].toFixed(1)}`,
);
