/**
 * Plays the inspector's HeadCT loop on the engine (no app): label 10 hemorrhages + 20
 * normals, train + cross-validate, decide the top 12 unlabelled of the queue, train again.
 * Writes every score (final model, every fold model on every image, out-of-fold) to JSON so
 * threshold rules can be compared on the images that stayed unlabelled.
 *
 *   nice -n 10 npx tsx scripts/threshold-loop.ts --out /tmp/loop.json [--subsets 0,1]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FeatureSession } from '../src-main/engine/feature-session';
import { resolveSettings } from '../src-main/engine/settings';
import { trainFast } from '../src-main/engine/train';
import { scoreFeatures } from '../src-main/engine/infer';
import { crossValidate } from '../src-main/engine/validate';
import { Rng } from '../src-main/engine/util/rng';
import type { DraState } from '../src-main/engine/heads/state';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: '/tmp/threshold-loop.json' },
    subsets: { type: 'string', default: '0' },
    root: { type: 'string', default: '/work/shared/datasets/headct' },
  },
});

async function main(): Promise<void> {
  const session = await FeatureSession.open({});
  const ids = Array.from({ length: 200 }, (_, i) => i);
  const paths = ids.map((i) => join(values.root!, 'head_ct', `${String(i).padStart(3, '0')}.png`));
  const defect = (i: number) => i < 100;
  const feats = await session.ofPaths(paths);
  const settings = resolveSettings({});
  const out: unknown[] = [];
  for (const subset of values.subsets!.split(',').map(Number)) {
    const rng = new Rng(1000 + subset);
    const hem = subset === 0 ? ids.slice(0, 10) : rng.sample(ids.slice(0, 100), 10);
    const nor = subset === 0 ? ids.slice(100, 120) : rng.sample(ids.slice(100), 20);
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
      const state = await trainFast(
        { normals: normals.map((i) => feats[i].features!), anomalies: anomalies.map((i) => feats[i].features!), pseudo },
        settings,
      );
      const folds: { fold: number; trainNormalIds: string[]; state: DraState }[] = [];
      const v = await crossValidate(
        normals.map((i, j) => ({ id: String(i), features: feats[i].features!, pseudo: pseudo[j] })),
        anomalies.map((i) => ({ id: String(i), cls: 'defect', features: feats[i].features! })),
        settings,
        { folds: 3, onFold: (f) => folds.push(f) },
      );
      const all = feats.map((f) => f.features!);
      const final = scoreFeatures(state, all).map((s) => s.total);
      const foldAll = folds.map((f) => ({
        trainNormalIds: f.trainNormalIds.map(Number),
        scores: scoreFeatures(f.state, all).map((s) => s.total),
      }));
      const oof = Object.fromEntries(Object.entries(v.scores).map(([id, s]) => [id, { fold: s.fold, total: s.total }]));
      rounds.push({ round, labelled: [...labelled].sort((a, b) => a - b), final, folds: foldAll, oof, auc: v.aucRoc, seconds: (Date.now() - t0) / 1000 });
      console.log(`subset ${subset} round ${round}: ${normals.length} good / ${anomalies.length} defect, cv auc ${v.aucRoc?.toFixed(3)}, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
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
