/**
 * Completes a trained state: the kNN bank (when the kNN head is on) and the calibration of
 * every head on the training normals.
 *
 * DRA heads: mean/std of their raw scores on the training normals, after training, with the
 * fixed M_r. These images were trained on, so their spread is optimistic (test normals score
 * a little higher): the 'calibrated' rule uses these only to put heads on one scale.
 * kNN: leave-one-out distances of the training normals, an unbiased estimate of what an
 * unseen normal scores, so its z-score means "standard deviations above a normal image".
 */
import type { ImageFeatures } from '../types';
import type { DraState } from '../heads/state';
import { buildKnn, knnLeaveOneOut, stats } from './knn';
import { scoreRawAsync } from './score';
import { activeHeads } from '../heads/active';
import { fitGlobalHead } from '../heads/global-head';
import { fitGaussianHead, gaussianApplies } from './gaussian';
import { projectPatchCoreHead } from './patchcore-head';

/**
 * `anomalies` (the labelled defects' features) feed the global head; without them, or with
 * settings.globalHead off, the state has none. The Gaussian head needs no defect but enough
 * normals (gaussianApplies). Both calibrate on leave-one-out scores, like kNN.
 */
export async function finishState(
  state: DraState,
  normals: readonly ImageFeatures[],
  anomalies: readonly ImageFeatures[] = [],
): Promise<DraState> {
  const raw = await scoreRawAsync(state, normals);
  const calibration: DraState['calibration'] = {};
  for (const h of activeHeads(state.settings, state.hasSeen)) calibration[h] = stats(raw[h]);
  // Spread of the paper's sum on normal images: the 'balanced' rule scales the kNN z-score
  // by it so that both parts weigh alike on normal data.
  const draSum = raw.seen.map((_, i) => raw.seen[i] + raw.pseudo[i] + raw.residual[i] - raw.normality[i]);
  calibration.dra = stats(draSum);
  let knn = state.knn;
  if (state.settings.knnHead) {
    knn = buildKnn(normals, state.settings.knnPatch ?? false);
    const loo = knnLeaveOneOut(knn, normals, state.settings.topKRatio);
    calibration.knn = stats(loo.image);
    if (loo.patch) calibration.knnPatch = stats(loo.patch.score);
  }
  let gaussian = state.gaussian;
  const dim = normals[0]?.levels[0]?.c ?? 0;
  if (state.settings.gaussianHead && gaussianApplies(normals.length, dim)) {
    const fit = fitGaussianHead(normals);
    gaussian = fit.state;
    calibration.gaussian = fit.calibration;
  }
  let patchcore = state.patchcore;
  if (state.settings.patchcoreHead && normals.length >= 2) {
    const fit = await projectPatchCoreHead(normals, state.settings.seed);
    patchcore = fit.state;
    calibration.patchcore = fit.calibration;
  }
  let global = state.global;
  if (state.settings.globalHead && anomalies.length > 0 && normals.length >= 2) {
    const fit = fitGlobalHead(normals, anomalies);
    global = fit.state;
    calibration.global = fit.calibration;
  }
  return { ...state, knn, gaussian, patchcore, global, calibration };
}
