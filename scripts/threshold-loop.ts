/**
 * Plays the inspector's HeadCT loop on the engine (no app), as the app's retrain trains
 * (trainFast + the cross-validation that chooses the supervised weight, engine/choose.ts):
 * label 10 hemorrhages + 20 normals, train + cross-validate, decide the top 12 unlabelled of
 * the queue, train again. Writes every score (final model and every fold model on every
 * image, under the chosen weight; out-of-fold scores and z) to JSON so threshold rules can be
 * compared on the images that stayed unlabelled.
 *
 * Subsets: a number n is a seeded random draw (n = 0: ids 0-9 and 100-119); `e2e` is the
 * labelled set of tests/e2e/headct-loop.spec.ts (verification only: rules are chosen on the
 * numbered subsets).
 *
 *   nice -n 10 npx tsx scripts/threshold-loop.ts --out /tmp/loop.json [--subsets 1,2,3]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FeatureSession } from '../src-main/engine/feature-session';
import { resolveSettings } from '../src-main/engine/settings';
import { trainFast } from '../src-main/engine/train';
import { scoreFeatures } from '../src-main/engine/infer';
import { crossValidate, trainingData } from '../src-main/engine/validate';
import { Rng } from '../src-main/engine/util/rng';
import type { DraState } from '../src-main/engine/heads/state';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: '/tmp/threshold-loop.json' },
    subsets: { type: 'string', default: '0' },
    root: { type: 'string', default: '/work/shared/datasets/headct' },
  },
});

function labelSet(subset: string, ids: number[]): { hem: number[]; nor: number[] } {
  if (subset === 'e2e')
    return {
      hem: Array.from({ length: 10 }, (_, k) => 5 + 10 * k),
      nor: Array.from({ length: 20 }, (_, k) => 102 + 5 * k),
    };
  const n = Number(subset);
  if (n === 0) return { hem: ids.slice(0, 10), nor: ids.slice(100, 120) };
  const rng = new Rng(1000 + n);
  return { hem: rng.sample(ids.slice(0, 100), 10), nor: rng.sample(ids.slice(100), 20) };
}

async function main(): Promise<void> {
  const session = await FeatureSession.open({});
  const ids = Array.from({ length: 200 }, (_, i) => i);
  const paths = ids.map((i) => join(values.root!, 'head_ct', `${String(i).padStart(3, '0')}.png`));
  const defect = (i: number) => i < 100;
  const feats = await session.ofPaths(paths);
  const all = feats.map((f) => f.features!);
  const settings = resolveSettings({});
  const out: unknown[] = [];
  for (const subset of values.subsets!.split(',')) {
    const { hem, nor } = labelSet(subset, ids);
    const labelled = new Set([...hem, ...nor]);
    const rounds = [];
    for (let round = 1; round <= 2; round++) {
      const normals = [...labelled].filter((i) => !defect(i)).sort((a, b) => a - b);
      const anomalies = [...labelled].filter(defect).sort((a, b) => a - b);
      const pseudo = (
        await session.pseudoFor(
          settings,
          normals.map((i) => ({ path: paths[i], hash: feats[i].hash! })),
        )
      ).pool;
      const t0 = Date.now();
      const vn = normals.map((i, j) => ({ id: String(i), features: all[i], pseudo: pseudo[j] }));
      const va = anomalies.map((i) => ({ id: String(i), cls: 'defect', features: all[i] }));
      const trained = await trainFast(trainingData(vn, va), settings);
      const folds: { fold: number; trainNormalIds: string[]; state: DraState }[] = [];
      const v = await crossValidate(vn, va, settings, { folds: 3, select: true, onFold: (f) => folds.push(f) });
      const combination = v.combination;
      const state = combination ? { ...trained, combination } : trained;
      const final = scoreFeatures(state, all).map((s) => s.total);
      const foldAll = folds.map((f) => ({
        trainNormalIds: f.trainNormalIds.map(Number),
        scores: scoreFeatures(combination ? { ...f.state, combination } : f.state, all).map((s) => s.total),
      }));
      const oof = Object.fromEntries(
        Object.entries(v.scores).map(([id, s]) => [id, { fold: s.fold, total: s.total, z: s.z }]),
      );
      rounds.push({
        round,
        labelled: [...labelled].sort((a, b) => a - b),
        weight: combination?.supervisedWeight ?? 1,
        final,
        folds: foldAll,
        foldReference: v.foldReference,
        oof,
        auc: v.aucRoc,
        seconds: (Date.now() - t0) / 1000,
      });
      console.log(
        `subset ${subset} round ${round}: ${normals.length} good / ${anomalies.length} defect, weight ${combination?.supervisedWeight}, cv auc ${v.aucRoc?.toFixed(3)}, ${((Date.now() - t0) / 1000).toFixed(0)} s`,
      );
      // The queue: unlabelled by final score, highest first; decide the top 12 by ground truth.
      const queue = ids.filter((i) => !labelled.has(i)).sort((a, b) => final[b] - final[a]);
      for (const i of queue.slice(0, 12)) labelled.add(i);
    }
    out.push({ subset, rounds });
    writeFileSync(values.out!, JSON.stringify(out));
  }
  await session.close();
}

void main();
