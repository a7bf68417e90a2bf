/**
 * The trained DRA detector as plain data: every weight a Float32Array, so a state can be
 * saved (model-file.ts), posted to a worker thread, and rebuilt into tensors anywhere.
 */
import type { FeatureMap, HeadName, TrainSettings } from '../types';
import type { GlobalHeadState } from './global-head';
import type { CombinationChoice } from '../select';
import type { PatchCoreHeadState } from '../infer/patchcore-head';

/** Weights of the four DRA heads. Matrices are row-major [in, out]. */
export interface DraWeights {
  /** Feature channels c' the heads read. */
  channels: number;
  /**
   * Seen and pseudo heads side by side. The paper's form (hidden absent or 0): a 1x1 conv
   * c'->1 each, w [c', 2] (column 0 seen, 1 pseudo). With hidden units (settings.patchHidden):
   * a per-patch MLP each, w [c', 2*hidden] (seen's units first) -> ReLU -> out [2*hidden, 2],
   * block-diagonal (each head reads only its own units; the other entries are 0).
   */
  patch: { w: Float32Array; b: Float32Array; hidden?: number; out?: Float32Array; outB?: Float32Array };
  residual: {
    /** Output channels of the learned 1x1 reduction (0: the 3x3 conv reads c' directly). */
    reduceTo: number;
    /** [c', reduceTo] (empty when reduceTo = 0). */
    reduce: Float32Array;
    /** 3x3 conv output channels. */
    width: number;
    /** 3x3 conv as [9 * cin, width], rows ordered (dy, dx, cin). */
    conv: Float32Array;
    convB: Float32Array;
    gamma: Float32Array;
    beta: Float32Array;
    runMean: Float32Array;
    runVar: Float32Array;
    /** 1x1 conv width -> 1: [width, 1]. */
    out: Float32Array;
    outB: Float32Array;
  };
  normality: { hidden: number; w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array };
}

export interface HeadStats {
  mean: number;
  std: number;
}

/**
 * Per-head mean/std of scores on training normals, for the 'calibrated' rule and the kNN
 * z-score. 'knnPatch' is the patch-level kNN variant (it feeds the 'knn' head).
 */
/** Per-head stats on training normals; 'dra' is the paper's sum (seen + pseudo + residual - normality). */
export type Calibration = Partial<Record<HeadName | 'knnPatch' | 'dra', HeadStats>>;

export interface KnnState {
  /** Image-level bank: L2-normalised global-average-pooled level-0 features of the training normals, [count, dim]. */
  dim: number;
  count: number;
  bank: Float32Array;
  /** Optional patch bank: every level-0 patch (L2-normalised) of every training normal, [count * patchesPerImage, dim]. */
  patch?: { patchesPerImage: number; h: number; w: number; bank: Float32Array };
}

export interface GaussianState {
  /** Channels of the image vector (the kNN head's: L2-normalised pool of level 0). */
  dim: number;
  /** Training normals it was fitted on. */
  count: number;
  /** lambda = shrink * trace(C) / dim was added to the covariance's diagonal. */
  shrink: number;
  mean: Float32Array;
  /** L^-1 for the shrunk covariance L L^T, row-major [dim, dim] (lower triangular). */
  whiten: Float32Array;
}

export interface DraState {
  formatVersion: 1;
  settings: TrainSettings;
  /** Feature map shape per pyramid level the heads were trained on. */
  levels: { h: number; w: number; c: number }[];
  weights: DraWeights;
  /** Fixed reference map M_r per level (mean of the training normals' maps). */
  reference: FeatureMap[];
  /** False when trained without labelled anomalies: the seen head is not scored. */
  hasSeen: boolean;
  /** Leave-one-out statistics for 'knn' (and 'knnPatch'), training-normal statistics for the DRA heads. */
  calibration: Calibration;
  knn?: KnnState;
  /** The Gaussian head (settings.gaussianHead and enough normals, infer/gaussian.ts). */
  gaussian?: GaussianState;
  /** The PatchCore head (settings.patchcoreHead, infer/patchcore-head.ts). */
  patchcore?: PatchCoreHeadState;
  /** The global head (settings.globalHead and at least one labelled defect). */
  global?: GlobalHeadState;
  /**
   * The supervised heads' weight chosen on the project's cross-validation (select.ts), with its
   * evidence. Absent (trained without validation, or before it existed): weight 1.
   */
  combination?: CombinationChoice;
  /** Full mode only: fine-tuned backbone weights in the order of model.getWeights(). */
  backbone?: { name: string; shape: number[]; data: Float32Array }[];
}
