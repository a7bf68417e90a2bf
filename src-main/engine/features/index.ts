export { createFeatureExtractor } from './extractor';
export { defaultCacheDir, FeatureCache } from './cache';
export { levelSize } from './compute';
export type { FeatureExtractor, FeatureExtractorOptions, FeatureInput, FeatureResult } from './types';
