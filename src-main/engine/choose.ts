/**
 * Training with the supervised heads' weight chosen on the project's own data: the model
 * trains on every labelled image, a K-fold cross-validation of the same recipe gives the
 * held-out evidence (validate.ts), and select.ts turns it into the weight the model scores
 * with. The app's retrain, `swan train --validate K` and the benchmark's `swan` method all
 * come through here, so what is measured is what ships.
 */
import { performance } from 'node:perf_hooks';
import type { DraState } from './heads/state';
import { trainFast } from './train';
import { throwIfAborted } from './train/abort';
import type { ProgressFn, TrainSettings } from './types';
import {
  crossValidate,
  trainingData,
  type ValidationAnomaly,
  type ValidationNormal,
  type ValidationResult,
  type ValidateOptions,
} from './validate';

export interface ChosenTrainOptions {
  /** K of the cross-validation (0: none, and no choice: the fixed weights of settings.ts). */
  folds: number;
  onProgress?: ProgressFn;
  signal?: AbortSignal;
  onEvidence?: ValidateOptions['onEvidence'];
}

export interface ChosenModel {
  state: DraState;
  validation?: ValidationResult;
  /** Of the final model's training alone (the validation's own time is in validation.seconds). */
  trainSeconds: number;
}

export async function trainChosen(
  normals: readonly ValidationNormal[],
  anomalies: readonly ValidationAnomaly[],
  settings: TrainSettings,
  opts: ChosenTrainOptions,
): Promise<ChosenModel> {
  const t0 = performance.now();
  const state = await trainFast(trainingData(normals, anomalies), settings, {
    onProgress: opts.onProgress,
    signal: opts.signal,
  });
  const trainSeconds = (performance.now() - t0) / 1000;
  if (!(opts.folds > 0)) return { state, trainSeconds };
  const validation = await crossValidate(normals, anomalies, settings, {
    folds: opts.folds,
    onProgress: opts.onProgress,
    signal: opts.signal,
    select: true,
    onEvidence: opts.onEvidence,
  });
  throwIfAborted(opts.signal);
  return {
    state: validation.combination ? { ...state, combination: validation.combination } : state,
    validation,
    trainSeconds,
  };
}
