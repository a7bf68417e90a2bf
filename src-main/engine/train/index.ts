export { trainFast, checkFastData, type TrainOptions, type FastTrainData } from './train-fast';
export {
  deviationPerSample,
  bcePerSample,
  focalPerSample,
  draLoss,
  routeLabels,
  priorStats,
  type SampleLabel,
  type DraHead,
} from './losses';
export { planBatch, type BatchPlan, type SampleRef, type SamplerConfig } from './sampler';
export type { DraState, DraWeights, Calibration, KnnState } from '../heads/state';
