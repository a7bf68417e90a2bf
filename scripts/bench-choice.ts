/**
 * The supervised heads' weight chosen per run (engine/choose.ts) against every candidate's
 * AUC-ROC on the test split, and the kNN baseline: shows what the choice costs or gains
 * against each fixed weight. The test split only ever scores; the choice sees the training
 * split. Prints one JSON line per run.
 * Usage: node --import tsx scripts/bench-choice.ts DATASET SETTING SHOTS SEED_START SEEDS [FOLDS]
 */
import { makeSplit } from '../src-main/data/splits';
import { resolveDataset, defaultDataRoot } from '../src-main/data/datasets';
import { FeatureSession } from '../src-main/engine/feature-session';
import { resolveSettings } from '../src-main/engine/settings';
import { trainChosen } from '../src-main/engine/choose';
import { knnBaselineScores, scoreFeatures } from '../src-main/engine/infer';
import { aucRoc } from '../src-main/engine/metrics';
import { CANDIDATE_WEIGHTS, splitParts } from '../src-main/engine/select';
import type { Setting } from '../src-main/data/types';

const [spec, setting, shotsArg, startArg, seedsArg, foldsArg] = process.argv.slice(2);
const ds = await resolveDataset(spec, { dataRoot: defaultDataRoot() });
const session = await FeatureSession.open({ inputSize: 224 });
const all = await session.ofPaths(ds.items.map((it) => it.path));
const byPath = new Map(all.map((f) => [f.path, f]));
const classes = setting === 'hard' ? ds.anomalyClasses : [undefined];
for (let seed = Number(startArg); seed < Number(startArg) + Number(seedsArg); seed++) {
  for (const knownClass of classes) {
    const split = makeSplit(ds, { setting: setting as Setting, shots: Number(shotsArg), seed, knownClass });
    const settings = resolveSettings({ seed });
    const trainN = split.trainNormals.filter((it) => byPath.get(it.path)?.features);
    const { pool } = await session.pseudoFor(
      settings,
      trainN.map((it) => ({ path: it.path, hash: byPath.get(it.path)!.hash! })),
    );
    const t0 = performance.now();
    const chosen = await trainChosen(
      trainN.map((it, j) => ({ id: it.path, features: byPath.get(it.path)!.features!, pseudo: pool[j] })),
      split.trainAnomalies.map((it) => ({
        id: it.path,
        cls: it.cls ?? 'defect',
        features: byPath.get(it.path)!.features!,
      })),
      settings,
      { folds: Number(foldsArg ?? 3) },
    );
    const seconds = (performance.now() - t0) / 1000;
    const test = split.test.filter((it) => byPath.get(it.path)?.features);
    const feats = test.map((it) => byPath.get(it.path)!.features!);
    const labels = test.map((it) => it.label);
    const parts = scoreFeatures(chosen.state, feats, { supervisedWeight: 1 }).map((s, i) =>
      splitParts(s.perHead, labels[i] as 0 | 1),
    );
    const testAuc = Object.fromEntries(
      CANDIDATE_WEIGHTS.map((a) => [
        a,
        aucRoc(
          parts.map((p) => a * p.supervised + p.unsupervised),
          labels,
        ),
      ]),
    );
    const c = chosen.state.combination;
    const knn = aucRoc(
      knnBaselineScores(chosen.state.knn ? trainN.map((it) => byPath.get(it.path)!.features!) : [], feats),
      labels,
    );
    console.log(
      JSON.stringify({
        dataset: ds.name,
        setting,
        shots: Number(shotsArg),
        seed,
        knownClass,
        chosen: c?.supervisedWeight ?? null,
        chosenAuc: testAuc[c?.supervisedWeight ?? 1],
        knn,
        testAuc,
        cv: c?.candidates.map((x) => [x.weight, x.seenAuc, x.unseenAuc, x.passesGuard, x.meanAuc]),
        reason: c?.reason,
        seconds,
      }),
    );
  }
}
await session.close();
