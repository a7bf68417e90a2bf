export {
  trainModel,
  openScorer,
  openSession,
  sessionTapLayers,
  type TrainRequest,
  type TrainResult,
  type Scorer,
  type ScoreResult,
} from './engine';
export { validateModel, type ValidateModelRequest, type ValidateModelResult } from './validate-model';
export { FeatureSession } from './feature-session';
export { shapeForImages as inputShapeFor } from './features/geometry';
export { backboneIdOf } from './backbone';
export { warmTraining } from './train/matmul-runtime';
export { DEFAULT_SETTINGS, resolveSettings } from './settings';
export type { ModelManifest, ManifestValidation } from './model-file';
export * from './types';
export {
  crossValidate,
  planFolds,
  validationMetrics,
  VALIDATION_METHOD,
  type ValidationResult,
  type OutOfFoldScore,
} from './validate';
export { systemInfo, fullModeSupport, type SystemInfo as EngineSystemInfo } from './capabilities';
