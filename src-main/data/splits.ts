/** The paper's evaluation splits (dra.md, "Protocols"). */
import { Rng } from '../engine/util/rng';
import { DataError } from './data-error';
import type { Dataset, DatasetItem, ProtocolSplit, Setting } from './types';

/** Anomalies removed from the test set whatever the shots, so 1-shot tests on the 10-shot test set. */
export const PROTOCOL_DRAW = 10;
/** Share of the normals that trains when the layout fixes no split (3:1). */
export const TRAIN_NORMAL_SHARE = 0.75;

export interface SplitOptions {
  setting: Setting;
  shots: number;
  seed: number;
  /** Hard setting: the one labelled anomaly class. */
  knownClass?: string;
}

/** Candidate known classes of the hard setting. */
export function hardClasses(ds: Dataset): string[] {
  return ds.anomalyClasses.slice();
}

function splitNormals(ds: Dataset, rng: Rng): { train: DatasetItem[]; test: DatasetItem[] } {
  if (ds.fixedSplit)
    return { train: ds.fixedSplit.trainNormals.slice(), test: ds.fixedSplit.testNormals.slice() };
  const shuffled = rng.shuffle(ds.items.filter((i) => i.label === 0));
  const nTrain = shuffled.length - Math.round(shuffled.length * (1 - TRAIN_NORMAL_SHARE));
  return { train: shuffled.slice(0, nTrain), test: shuffled.slice(nTrain) };
}

export function makeSplit(ds: Dataset, opts: SplitOptions): ProtocolSplit {
  const { setting, shots, seed, knownClass } = opts;
  if (!Number.isInteger(shots) || shots < 1)
    throw new DataError(`shots must be a whole number >= 1, got ${shots}`);

  const anomalies = ds.items.filter((i) => i.label === 1);
  let pool: DatasetItem[];
  let testAnomalies: (drawn: Set<DatasetItem>) => DatasetItem[];
  if (setting === 'hard') {
    if (!knownClass)
      throw new DataError(
        `${ds.name}: the hard setting needs a known class (one of ${ds.anomalyClasses.join(', ')})`,
      );
    if (!ds.anomalyClasses.includes(knownClass)) {
      throw new DataError(
        `${ds.name}: no anomaly class "${knownClass}" (classes: ${ds.anomalyClasses.join(', ') || 'none'})`,
      );
    }
    pool = anomalies.filter((i) => i.cls === knownClass);
    // The whole known class leaves the test: it holds only unseen classes.
    testAnomalies = () => anomalies.filter((i) => i.cls !== knownClass);
  } else {
    pool = anomalies;
    testAnomalies = (drawn) => anomalies.filter((i) => !drawn.has(i));
  }
  if (shots > pool.length) {
    const ofClass = setting === 'hard' ? ` of class "${knownClass}"` : '';
    throw new DataError(
      `${ds.name}: ${shots} shots asked but only ${pool.length} anomalies${ofClass} available`,
    );
  }

  // Separate streams so the anomaly draw does not depend on how many normals there are.
  const root = new Rng(seed);
  const normalRng = root.fork();
  const anomalyRng = root.fork();
  const normals = splitNormals(ds, normalRng);
  // Always draw the same count: a shuffle's prefix does not depend on how much is kept,
  // so the 1-shot image is the first of the 10 and both test sets are the same.
  const drawn = anomalyRng.sample(pool, Math.min(pool.length, Math.max(PROTOCOL_DRAW, shots)));
  const testAnoms = testAnomalies(new Set(drawn));
  if (testAnoms.length === 0) {
    const why =
      setting === 'hard'
        ? `the hard setting needs a second anomaly class to test on (classes: ${ds.anomalyClasses.join(', ')})`
        : `all ${anomalies.length} anomalies go to training (the protocol labels ${PROTOCOL_DRAW}), none is left to test`;
    throw new DataError(`${ds.name}: ${why}`);
  }
  if (normals.test.length === 0)
    throw new DataError(`${ds.name}: too few normal images to leave any for the test`);

  const inTest = new Set<DatasetItem>([...normals.test, ...testAnoms]);
  const split: ProtocolSplit = {
    setting,
    shots,
    seed,
    trainNormals: normals.train,
    trainAnomalies: drawn.slice(0, shots),
    // Data set order, so the test list reads the same whatever the draw.
    test: ds.items.filter((i) => inTest.has(i)),
  };
  if (setting === 'hard') split.knownClass = knownClass;
  return split;
}
