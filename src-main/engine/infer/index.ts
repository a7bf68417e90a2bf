export {
  scoreFeatures,
  scoreFeaturesAsync,
  scoreFeaturesPatchCoreAsync,
  scoreRaw,
  scoreRawAsync,
  releaseScoringTensors,
  type ScoreOptions,
  type RawScores,
} from './score';
export {
  buildKnn,
  knnScores,
  knnLeaveOneOut,
  knnBaselineScores,
  pooledVector,
  stats,
  type KnnScores,
} from './knn';
export { finishState } from './calibrate';
