import type { TrainSettings } from './types';

/**
 * Defaults for fast mode on a CPU: the backbone is frozen and only the heads learn, so far
 * fewer steps than dra.md's fine-tuning recipe converge, which keeps a retrain to seconds.
 * The weights of the extra heads (knnWeight, gaussianWeight, globalWeight) only set their
 * balance within each part; how much the supervised part (the paper's heads and the global
 * head) counts against the unsupervised one (kNN, Gaussian) is chosen per project from its
 * own labelled images whenever the training is cross-validated (engine/select.ts); without
 * a validation the weight is 1. The PatchCore head (a project setting, off by default: it
 * helps industrial surfaces and costs medical images, docs/benchmarks/choices.md) counts in the
 * unsupervised part at patchcoreWeight, as kNN and Gaussian do. Measured numbers, and which
 * data and seeds each choice saw: docs/benchmarks/.
 */
export const DEFAULT_SETTINGS: TrainSettings = {
  seed: 0,
  mode: 'fast',
  loss: 'deviation',
  pyramidLevels: 2,
  topKRatio: 0.1,
  referenceCount: 5,
  pseudo: 'cutpaste',
  pseudoPoolPerImage: 4,
  batchNormals: 32,
  batchAnomalies: 16,
  steps: 45,
  learningRate: 3e-3,
  weightDecay: 1e-5,
  gradClip: 1.0,
  knnHead: true,
  knnWeight: 3,
  gaussianHead: true,
  gaussianWeight: 3,
  patchcoreHead: false,
  patchcoreWeight: 3,
  globalHead: true,
  globalWeight: 1.25,
  combine: 'balanced',
  matchedNormals: 5,
};

/**
 * Full mode's defaults: dra.md's reference recipe, with the backbone fine-tuned. Batch 48 (32
 * normals, 16 seen anomalies), Adam lr 2e-4 with L2 decay 1e-5, 30 epochs x 20 steps, the lr
 * cut tenfold every 10 epochs (train/adam.ts stepDecayLr: at a third and two thirds of steps).
 */
export const FULL_MODE_RECIPE = {
  batchNormals: 32,
  batchAnomalies: 16,
  learningRate: 2e-4,
  weightDecay: 1e-5,
  steps: 30 * 20,
} as const satisfies Partial<TrainSettings>;

/** The defaults of a mode: fast mode's, with the paper's recipe over them in full mode. */
export function modeDefaults(mode: TrainSettings['mode']): TrainSettings {
  return mode === 'full' ? { ...DEFAULT_SETTINGS, ...FULL_MODE_RECIPE, mode } : DEFAULT_SETTINGS;
}

export function resolveSettings(overrides: Partial<TrainSettings> = {}): TrainSettings {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return { ...modeDefaults(overrides.mode ?? DEFAULT_SETTINGS.mode), ...defined };
}
