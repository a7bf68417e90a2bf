/**
 * Types shared by the engine's parts (backbone, heads, training, inference, model file)
 * and by every caller (CLI, worker, API). Pure data: no TF.js tensors cross this boundary.
 */

/** One feature map, row-major HWC. */
export interface FeatureMap {
  h: number;
  w: number;
  c: number;
  data: Float32Array; // length h*w*c
}

/**
 * The features of one image: one map per pyramid level.
 * levels[0] is the image at the model input size, levels[1] the half-size copy.
 */
export interface ImageFeatures {
  levels: FeatureMap[];
  /**
   * Per channel mean then standard deviation of an earlier backbone layer at level 0
   * (BackboneSpec.pooledLayer), for the global head; absent when the extractor has none.
   */
  pooled?: Float32Array;
  /** Level-0 maps of BackboneSpec.tapLayers, by layer name; absent when none were asked for. */
  taps?: Record<string, FeatureMap>;
}

export type HeadName =
  'seen' | 'pseudo' | 'residual' | 'normality' | 'knn' | 'gaussian' | 'patchcore' | 'global';

export const DRA_HEADS: readonly HeadName[] = ['seen', 'pseudo', 'residual', 'normality'];

/** Display order of the heads (app, held-out metrics): the paper's four, then the extra heads. */
export const HEAD_ORDER: readonly HeadName[] = [...DRA_HEADS, 'knn', 'gaussian', 'patchcore', 'global'];

/** A head's place in HEAD_ORDER; a head it does not know sorts after every known one. */
function headRank(head: string): number {
  const i = (HEAD_ORDER as readonly string[]).indexOf(head);
  return i < 0 ? HEAD_ORDER.length : i;
}

/** Sort comparator of head names: HEAD_ORDER, then unknown heads alphabetically. */
export function compareHeads(a: string, b: string): number {
  return headRank(a) - headRank(b) || a.localeCompare(b);
}

/**
 * How a head's score counts towards the anomaly total: the holistic normality head scores how
 * normal an image is, so it is subtracted; every other head adds.
 */
export function headSign(head: string): 1 | -1 {
  return head === 'normality' ? -1 : 1;
}

export type LossKind = 'deviation' | 'bce' | 'focal';
export type TrainMode = 'fast' | 'full';
export type PseudoKind = 'cutpaste' | 'outlier';

export interface BackboneSpec {
  /** 'mobilenet_v1_0.75', 'resnet50_v2' or 'resnet18'. */
  id: string;
  /** Folder of the weights: a TF.js layers model (model.json + shards), or for resnet50_v2 weights/*.npy. */
  modelDir: string;
  /** Name of the layer whose output is the feature map. */
  featureLayer: string;
  /** Side of the square input (224 or 448); the short side when inputShape is given. */
  inputSize: number;
  /**
   * Level-0 height and width when the project's images are elongated (features/geometry.ts);
   * absent: inputSize x inputSize, as every model before it.
   */
  inputShape?: { height: number; width: number };
  /**
   * An earlier layer whose per-channel mean and standard deviation (level 0) the extractor
   * also returns (ImageFeatures.pooled), for the global head. Absent: the head pools the
   * feature map itself.
   */
  pooledLayer?: string;
  /**
   * A full-mode model's fine-tuned weights, applied over the pretrained ones after loading:
   * the model folder holding them and the SHA-256 of its backbone weight file (cache key).
   */
  fineTuned?: { modelDir: string; sha256: string };
  /**
   * Further layers whose level-0 maps the extractor also returns (ImageFeatures.taps), from
   * the same pass; e.g. ['stage2', 'stage3'] of resnet50_v2 for PatchCore.
   */
  tapLayers?: string[];
}

export interface TrainSettings {
  seed: number;
  mode: TrainMode;
  loss: LossKind;
  /** Pyramid levels (dra.md: 2). */
  pyramidLevels: number;
  /** Top-K fraction of patches for MIL heads (dra.md: 0.1). */
  topKRatio: number;
  /** Reference images N_r (dra.md: 5). */
  referenceCount: number;
  pseudo: PseudoKind;
  /** pseudo 'outlier': folder of images from another data set (searched recursively). */
  outlierDir?: string;
  /** Cut-paste variants per normal image computed ahead in fast mode. */
  pseudoPoolPerImage: number;
  batchNormals: number;
  batchAnomalies: number;
  steps: number;
  learningRate: number;
  weightDecay: number;
  gradClip: number;
  /** Extra head beyond the paper: nearest-normal-neighbour distance. */
  knnHead: boolean;
  /** DRA heads that train and score (default: all four). ['seen'] alone is DevNet. */
  heads?: HeadName[];
  /**
   * How head scores add up (see infer/score.ts). 'sum': the paper's raw
   * seen + pseudo + residual - normality (+ knn z-score); 'calibrated': every head
   * standardised by its mean/std on training normals first. Default 'sum'.
   */
  combine?: CombineRule;
  /** Residual head: learned 1x1 reduction c' -> this many channels before the 3x3 conv (0 = none). */
  residualReduce?: number;
  /** Residual head: output channels of its 3x3 conv. */
  residualWidth?: number;
  /** Hidden width of the holistic normality head (dra.md: 256). */
  normalityWidth?: number;
  /** Random 90-degree rotations / flips of the feature maps in fast training (default true). */
  augment?: boolean;
  /** kNN head also scores patches (nearest normal patch) and adds its map to the heatmap. */
  knnPatch?: boolean;
  /** Weight of the kNN head's z-score in the total (absent: 1; DEFAULT_SETTINGS: 3). */
  knnWeight?: number;
  /**
   * Extra head beyond the paper: Mahalanobis distance of the image to the training normals'
   * Gaussian (infer/gaussian.ts). Fitted only with at least as many normals as channels.
   */
  gaussianHead?: boolean;
  /** Weight of the Gaussian head's z-score in the total (absent: 1). */
  gaussianWeight?: number;
  /**
   * Extra head beyond the paper: PatchCore on the training normals (infer/patchcore-head.ts),
   * on level 0 and the backbone taps the features carry (patchCoreTapLayers).
   */
  patchcoreHead?: boolean;
  /** Weight of the PatchCore head's z-score in the total (absent: 1). */
  patchcoreWeight?: number;
  /**
   * Extra head beyond the paper: a whole-image classifier of the labelled defects on pooled
   * feature statistics (heads/global-head.ts). Trained only when defects are labelled.
   */
  globalHead?: boolean;
  /**
   * Weight of the global head's z-score in the total, per square root of the labelled defects
   * it learnt from (at most 10 count, heads/global-head.ts globalEvidence). Absent: 1.
   */
  globalWeight?: number;
  /** Seen and pseudo heads as per-patch MLPs with this many hidden units (0 or absent: the paper's 1x1 conv). */
  patchHidden?: number;
  /**
   * Matched negatives: about this many normals, the nearest to the labelled anomalies by
   * pooled features, fill half of every batch's normal slots (0 or absent = off). See
   * train/matched.ts.
   */
  matchedNormals?: number;
  /**
   * Full mode: the first backbone layer that trains (it and every later one); the earlier layers
   * stay frozen. Absent: the whole backbone trains, as in the paper. On the pure-JS cpu backend a
   * backward pass through all of MobileNet takes minutes, so the tests fine-tune its last block.
   */
  fineTuneFrom?: string;
}

export type CombineRule = 'sum' | 'calibrated' | 'balanced';

/** Score of one image. total = seen + pseudo + residual - normality (+ knn when on). */
export interface ImageScore {
  total: number;
  perHead: Partial<Record<HeadName, number>>;
  /** Patch anomaly map of level 0 (h*w, row-major), sum of the patch heads. */
  heatmap: { h: number; w: number; data: Float32Array };
  /** Uncalibrated head scores (perHead holds the values that add up to total). */
  raw?: Partial<Record<HeadName, number>>;
}

export interface TrainProgress {
  /** 'validate': cross-validation folds (step = fold, total = K), after training, before saving. */
  stage: 'features' | 'pseudo' | 'train' | 'reference' | 'calibrate' | 'validate' | 'save';
  step: number;
  total: number;
  /** Loss per head at this step (training stage only). */
  losses?: Partial<Record<HeadName, number>>;
  etaSeconds?: number;
}

export type ProgressFn = (p: TrainProgress) => void;

/** Engine errors carry a message meant for the user. */
export class EngineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineError';
  }
}
