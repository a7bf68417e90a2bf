/**
 * The benchmark's methods, each named for what runs:
 * - `swan`: the product default as the app trains it (DEFAULT_SETTINGS and the cross-validated
 *   choice of engine/choose.ts, whatever they are at the commit).
 * - `swan-pc`: the same with the project setting the PatchCore head on (settings.patchcoreHead).
 * - `dra`: the paper's DRA, its four heads summed (seen + pseudo + residual - normality), no
 *   head beyond the paper, random normals in every batch.
 * - `devnet`: the seen head alone (DevNet's deviation network on the frozen features).
 * - `knn`: unsupervised, distance of the pooled image vector to the nearest training normal.
 * - `patchcore`: unsupervised, PatchCore (engine/infer/patchcore.ts) on the training normals.
 */
import { resolveSettings } from '../../engine/settings';
import type { TrainSettings } from '../../engine/types';

export const METHODS = ['swan', 'swan-pc', 'dra', 'knn', 'devnet', 'patchcore'] as const;
export type Method = (typeof METHODS)[number];
/** Methods that train the DRA heads (the others use no labelled defect). */
export type TrainedMethod = 'swan' | 'swan-pc' | 'dra' | 'devnet';

/** Methods trained as the app's retrain trains: with the cross-validation that chooses the weight. */
export function isProduct(m: Method): m is 'swan' | 'swan-pc' {
  return m === 'swan' || m === 'swan-pc';
}

export function isTrained(m: Method): m is TrainedMethod {
  return isProduct(m) || m === 'dra' || m === 'devnet';
}

const NO_EXTRA_HEADS: Partial<TrainSettings> = {
  knnHead: false,
  gaussianHead: false,
  patchcoreHead: false,
  globalHead: false,
  combine: 'sum',
  matchedNormals: 0,
};

const METHOD_SETTINGS: Record<TrainedMethod, Partial<TrainSettings>> = {
  swan: {},
  'swan-pc': { patchcoreHead: true },
  dra: { ...NO_EXTRA_HEADS, heads: ['seen', 'pseudo', 'residual', 'normality'] },
  devnet: { ...NO_EXTRA_HEADS, heads: ['seen'] },
};

/** The training settings a method runs with; `overrides` (--set, ablations) come last. */
export function methodSettings(
  method: TrainedMethod,
  overrides: Partial<TrainSettings> = {},
  seed = 0,
): TrainSettings {
  return resolveSettings({ ...METHOD_SETTINGS[method], ...overrides, seed });
}

/** The name a result carries: the method, and any override that changed what it runs. */
export function methodLabel(method: Method, overrides: Partial<TrainSettings> = {}): string {
  const keys = Object.entries(overrides).filter(([, v]) => v !== undefined);
  if (keys.length === 0) return method;
  return `${method} (${keys.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ')})`;
}
