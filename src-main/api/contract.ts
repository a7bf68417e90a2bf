/**
 * The one typed API of Swan Inspector. Every front door (Electron IPC, the browser-mode
 * HTTP/WebSocket server, the CLI, the tests) speaks exactly these operations and events.
 * Types shared across processes live ONLY here; they are inferred from the zod schemas so
 * the validation done in main and the types used by the renderer can never drift apart.
 *
 * This file must stay free of Node and Electron imports: the renderer bundles it.
 * Names are stable once committed: add operations and fields, never rename them.
 */
import { z } from 'zod';

// ---------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------

export const ImageId = z.number().int().positive();
export const ClassId = z.number().int().positive();
export const ModelId = z.number().int().positive();
export const RunId = z.number().int().positive();

/** What the inspector said about an image. 'unlabelled' means no label row. */
export const LabelValue = z.enum(['good', 'defect', 'unlabelled']);
export type LabelValue = z.infer<typeof LabelValue>;

export const ImageStatus = z.enum(['ok', 'missing']);
export type ImageStatus = z.infer<typeof ImageStatus>;

const nonEmptyPath = z.string().trim().min(1, 'path must not be empty');
const empty = z.strictObject({});

export const ProjectInfo = z.object({
  /** Absolute path of the project folder. */
  path: z.string(),
  name: z.string(),
  createdAt: z.string(),
  imageCount: z.number().int(),
  missingCount: z.number().int(),
  counts: z.object({ good: z.number().int(), defect: z.number().int(), unlabelled: z.number().int() }),
  activeModelId: ModelId.nullable(),
  threshold: z.number().nullable(),
  /** True when the project folder cannot be written (opened read-only). */
  readOnly: z.boolean(),
  /** Leftovers of a crash or forced stop (temporary and orphan files) that opening removed. */
  cleanedUp: z.array(z.string()).optional(),
});
export type ProjectInfo = z.infer<typeof ProjectInfo>;

export const RecentProject = z.object({
  path: z.string(),
  name: z.string(),
  openedAt: z.string(),
  /** False when the folder was moved or deleted since. */
  exists: z.boolean(),
});
export type RecentProject = z.infer<typeof RecentProject>;

export const SkippedFile = z.object({
  /** File name as the inspector would recognise it. */
  name: z.string(),
  path: z.string(),
  reason: z.string(),
});
export type SkippedFile = z.infer<typeof SkippedFile>;

export const ImportSummary = z.object({
  batch: z.string(),
  imported: z.number().int(),
  /** Files already in the project (same path): not imported twice. */
  duplicates: z.number().int(),
  skipped: z.array(SkippedFile),
  importedIds: z.array(ImageId),
  /** Labels applied from a data-set layout (MVTec, folders, CSV). */
  labelled: z.number().int(),
});
export type ImportSummary = z.infer<typeof ImportSummary>;

export const ImportSource = z.discriminatedUnion('kind', [
  /** Files and/or folders (folders are walked recursively for image files). */
  z.strictObject({ kind: z.literal('paths'), paths: z.array(nonEmptyPath).min(1, 'give at least one path') }),
  /** MVTec AD layout: train/good, test/good, test/<class>. */
  z.strictObject({ kind: z.literal('mvtec'), root: nonEmptyPath }),
  /** One folder per class: good/ (or normal/, ok/) plus one folder per defect class. */
  z.strictObject({ kind: z.literal('folders'), root: nonEmptyPath }),
  /** A CSV of path,label[,class]. */
  z.strictObject({ kind: z.literal('csv'), file: nonEmptyPath }),
]);
export type ImportSource = z.infer<typeof ImportSource>;

/** A file dropped in the browser, where no path exists: its bytes, base64. */
export const UploadedFile = z.strictObject({
  name: z.string().min(1).max(255),
  dataBase64: z.string(),
});

export const ImageFilter = z.strictObject({
  label: LabelValue.optional(),
  classId: ClassId.optional(),
  scored: z.boolean().optional(),
  /** Only images whose score (active model) is above the project threshold. */
  aboveThreshold: z.boolean().optional(),
  status: ImageStatus.optional(),
  batch: z.string().optional(),
  /** Substring of the file name. */
  search: z.string().optional(),
});
export type ImageFilter = z.infer<typeof ImageFilter>;

export const ImageSort = z.enum(['score_desc', 'score_asc', 'imported', 'name']);
export type ImageSort = z.infer<typeof ImageSort>;

export const ImageSummary = z.object({
  id: ImageId,
  name: z.string(),
  path: z.string(),
  status: ImageStatus,
  width: z.number().int(),
  height: z.number().int(),
  batch: z.string(),
  label: LabelValue,
  classId: ClassId.nullable(),
  className: z.string().nullable(),
  /** Total anomaly score under the active model; null when not scored by it. */
  score: z.number().nullable(),
  /** Score above the project threshold. */
  flagged: z.boolean(),
});
export type ImageSummary = z.infer<typeof ImageSummary>;

export const Heatmap = z.object({
  h: z.number().int(),
  w: z.number().int(),
  /** Row-major h*w patch scores. */
  data: z.array(z.number()),
});
export type Heatmap = z.infer<typeof Heatmap>;

export const ImageScoreDetail = z.object({
  modelId: ModelId,
  modelVersion: z.number().int(),
  total: z.number(),
  /** seen, pseudo, residual, normality (+ knn or any extra head). */
  perHead: z.record(z.string(), z.number()),
  heatmap: Heatmap.nullable(),
  scoredAt: z.string(),
});
export type ImageScoreDetail = z.infer<typeof ImageScoreDetail>;

export const ImageDetail = ImageSummary.extend({
  sha256: z.string(),
  importedAt: z.string(),
  labelUpdatedAt: z.string().nullable(),
  scoreDetail: ImageScoreDetail.nullable(),
});
export type ImageDetail = z.infer<typeof ImageDetail>;

export const DefectClass = z.object({
  id: ClassId,
  name: z.string(),
  /** Images labelled defect with this class. */
  count: z.number().int(),
});
export type DefectClass = z.infer<typeof DefectClass>;

/** The training settings the inspector may change; everything else has sane defaults. */
export const TrainBackbone = z.enum(['mobilenet', 'resnet50']);
export type TrainBackbone = z.infer<typeof TrainBackbone>;

export const TrainSettingsInput = z.strictObject({
  seed: z.number().int().min(0).optional(),
  mode: z.enum(['fast', 'full']).optional(),
  loss: z.enum(['deviation', 'bce', 'focal']).optional(),
  steps: z.number().int().min(1).max(100_000).optional(),
  learningRate: z.number().positive().max(1).optional(),
  batchNormals: z.number().int().min(1).max(512).optional(),
  batchAnomalies: z.number().int().min(1).max(512).optional(),
  topKRatio: z.number().positive().max(1).optional(),
  referenceCount: z.number().int().min(1).max(64).optional(),
  pseudo: z.enum(['cutpaste', 'outlier']).optional(),
  /** pseudo 'outlier': an absolute folder of images from another data set (read, never served). */
  outlierDir: z
    .string()
    .min(1)
    .max(4096)
    .refine((p) => p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p), 'must be an absolute path')
    .optional(),
  pseudoPoolPerImage: z.number().int().min(0).max(64).optional(),
  knnHead: z.boolean().optional(),
  gaussianHead: z.boolean().optional(),
  globalHead: z.boolean().optional(),
  /**
   * The PatchCore head (engine/infer/patchcore-head.ts): distance to a memory bank of the good
   * images' patches, counted in the unsupervised part at settings.patchcoreWeight. Off by
   * default (docs/benchmarks/choices.md: it helps industrial surfaces, costs medical images).
   */
  patchcoreHead: z.boolean().optional(),
  inputSize: z.union([z.literal(224), z.literal(448)]).optional(),
  /**
   * The frozen backbone: 'mobilenet' (fast, MobileNetV1-0.75, the default) or 'resnet50'
   * (accurate, ResNet-50 v2 stages 1-3): the engine's names (engine/backbone/index.ts BACKBONE_NAMES).
   */
  backbone: TrainBackbone.optional(),
  /**
   * K of the cross-validation that measures the new version's held-out metrics (0: off).
   * The app's default is DEFAULT_VALIDATE_FOLDS (defaults.ts); fewer when labels are few.
   */
  validateFolds: z.number().int().min(0).max(10).optional(),
});
export type TrainSettingsInput = z.infer<typeof TrainSettingsInput>;

export const RunStatus = z.enum(['running', 'done', 'failed', 'cancelled']);
export type RunStatus = z.infer<typeof RunStatus>;

export const TrainStage = z.enum([
  'queued',
  'features',
  'pseudo',
  'train',
  'reference',
  'calibrate',
  'validate',
  'save',
]);
export type TrainStage = z.infer<typeof TrainStage>;

export const TrainingRun = z.object({
  id: RunId,
  status: RunStatus,
  startedAt: z.string(),
  finishedAt: z.string().nullable(),
  durationMs: z.number().nullable(),
  settings: TrainSettingsInput,
  error: z.string().nullable(),
  /** The model this run produced (status 'done' only). */
  modelId: ModelId.nullable(),
});
export type TrainingRun = z.infer<typeof TrainingRun>;

/**
 * A retrain's cross-validation runs after its model is active and the queue scored: until it
 * is 'done', the model scores with a provisional weight of its supervised heads and has no
 * held-out metrics (threshold rates are in-sample). Absent: validated while training, or never.
 */
export const ModelValidation = z.object({
  status: z.enum(['pending', 'running', 'done', 'failed']),
  folds: z.number().int(),
  error: z.string().nullable(),
});
export type ModelValidation = z.infer<typeof ModelValidation>;

export const ModelInfo = z.object({
  id: ModelId,
  /** 1, 2, 3... per project. */
  version: z.number().int(),
  createdAt: z.string(),
  active: z.boolean(),
  runId: RunId.nullable(),
  settings: z.record(z.string(), z.unknown()),
  labelCounts: z.object({ good: z.number().int(), defect: z.number().int() }),
  /**
   * Held-out metrics as the engine measured them at training (cross-validation: auc_roc, ap,
   * auc_roc_<head>, folds, n_good, n_defect, method, notes, out_of_fold scores by image id;
   * see models/held-out.ts), null when none were measured.
   */
  metrics: z.record(z.string(), z.unknown()).nullable(),
  warnings: z.array(z.string()),
  validation: ModelValidation.optional(),
});
export type ModelInfo = z.infer<typeof ModelInfo>;

/** What the engine can run on this machine (engine/capabilities.ts), for the Train view. */
export const SystemInfo = z.object({
  backend: z.object({
    /** 'wasm', 'cpu', 'tensorflow', 'tensorflow-gpu'. */
    tag: z.string(),
    description: z.string(),
    gpu: z.boolean(),
    native: z.boolean(),
  }),
  /** Whether full mode (backbone fine-tuning) runs here: a note when it does, what to install when not. */
  fullMode: z.discriminatedUnion('ok', [
    z.object({ ok: z.literal(true), note: z.string() }),
    z.object({ ok: z.literal(false), message: z.string() }),
  ]),
  gpu: z.object({ found: z.boolean(), description: z.string() }),
});
export type SystemInfo = z.infer<typeof SystemInfo>;

export const TrainProgressEvent = z.object({
  runId: RunId,
  stage: TrainStage,
  step: z.number().int(),
  total: z.number().int(),
  losses: z.record(z.string(), z.number()).optional(),
  etaSeconds: z.number().optional(),
});
export type TrainProgressEvent = z.infer<typeof TrainProgressEvent>;

const TrainingFinished = z.object({
  runId: RunId,
  status: RunStatus.exclude(['running']),
  modelId: ModelId.nullable(),
  version: z.number().int().nullable(),
  error: z.string().nullable(),
  warnings: z.array(z.string()),
});

/** Every loss point of a run, by head: a reload redraws the whole curve. */
const LossHistory = z.record(z.string(), z.array(z.object({ step: z.number().int(), value: z.number() })));

export const ScoringScope = z.enum(['all', 'unscored']);

export const ScoringJob = z.object({
  jobId: z.number().int().positive(),
  modelId: ModelId,
  total: z.number().int(),
});
export type ScoringJob = z.infer<typeof ScoringJob>;

export const HistogramBin = z.object({
  from: z.number(),
  to: z.number(),
  count: z.number().int(),
  good: z.number().int(),
  defect: z.number().int(),
  unlabelled: z.number().int(),
});
export type HistogramBin = z.infer<typeof HistogramBin>;

/** How the threshold was chosen; reports print it. 'auto' is the first one set after scoring. */
export const ThresholdSource = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('value') }),
  z.object({ kind: z.literal('auto') }),
  z.object({ kind: z.literal('falseAlarmRate'), target: z.number() }),
  z.object({ kind: z.literal('catchRate'), target: z.number() }),
]);
export type ThresholdSource = z.infer<typeof ThresholdSource>;

/**
 * What a threshold does, one rule for Review, Evaluate, the PDF and the CSV
 * (api/threshold.ts ratesAt): false alarms among good-labelled images and caught defects,
 * each image by its held-out evidence (not trained on: its own score; trained on: its
 * cross-validation score carried over to this model; else in-sample). A rate is null when
 * there is no image to measure it on; the intervals are 95 % Wilson intervals.
 */
const RateBasis = z.enum(['held-out', 'out-of-fold', 'in-sample', 'none']);
export const ThresholdRates = z.object({
  falseAlarmRate: z.number().nullable(),
  catchRate: z.number().nullable(),
  falseAlarmInterval: z.tuple([z.number(), z.number()]).nullable(),
  catchInterval: z.tuple([z.number(), z.number()]).nullable(),
  goodCount: z.number().int(),
  defectCount: z.number().int(),
  falseAlarms: z.number().int(),
  caught: z.number().int(),
  /**
   * 'held-out': images the model was not trained on; 'out-of-fold': as 'held-out', plus the
   * training images by their cross-validation scores; 'in-sample': every labelled image by
   * the model's own scores, the training ones in-sample (optimistic); 'none': no image.
   */
  goodBasis: RateBasis,
  defectBasis: RateBasis,
  /** Set when too few images stand behind the rates for them to be more than a rough guide. */
  thinEvidence: z.string().nullable(),
  /** Labelled defects not counted: picked from an earlier model's queue (api/threshold.ts queuePicks). */
  defectsPicked: z.number().int().optional(),
});
export type ThresholdRates = z.infer<typeof ThresholdRates>;

/**
 * The model's readable score scale: shown = (raw - offset) / unit, i.e. how many standard
 * deviations above a typical good image the model has not seen (held-out evidence of the
 * good images; 'in-sample' when there is none, then optimistic). Linear, so order,
 * threshold and flags are the same on both scales.
 */
export const ScoreScale = z.object({
  offset: z.number(),
  unit: z.number().positive(),
  basis: z.enum(['held-out', 'out-of-fold', 'in-sample', 'none']),
  goodCount: z.number().int(),
});
export type ScoreScale = z.infer<typeof ScoreScale>;

/** The review queue's unlabelled images under the threshold: what an inspector acts on. */
export const QueueCounts = z.object({ unlabelled: z.number().int(), flagged: z.number().int() });
export type QueueCounts = z.infer<typeof QueueCounts>;

/** A batch (the images of one import) by name; absent or null: every image of the project. */
const BatchRef = z.string().trim().min(1, 'batch name must not be empty').max(200).nullable().optional();

export const BatchInfo = z.object({
  name: z.string(),
  count: z.number().int(),
  firstImportedAt: z.string(),
  /** Its labels never train: the batch is for Evaluate, the held-out rates and the report. */
  evaluationOnly: z.boolean(),
});
export type BatchInfo = z.infer<typeof BatchInfo>;

export const ReportFormat = z.enum(['pdf', 'csv', 'both']);
export type ReportFormat = z.infer<typeof ReportFormat>;

export const ReportCounts = z.object({
  /** Images in the batch. */
  inspected: z.number().int(),
  /** Images scored by the report's model. */
  scored: z.number().int(),
  /** Scored above the threshold. */
  flagged: z.number().int(),
  labelled: z.number().int(),
  good: z.number().int(),
  defect: z.number().int(),
  missing: z.number().int(),
});
export type ReportCounts = z.infer<typeof ReportCounts>;

export const CurvePoint = z.object({ x: z.number(), y: z.number(), threshold: z.number() });
export type CurvePoint = z.infer<typeof CurvePoint>;

/** One scorer's curves and areas: the model's total score, or one head alone. */
export const CurveSet = z.object({
  aucRoc: z.number(),
  averagePrecision: z.number(),
  /** x = false-positive rate, y = true-positive rate; finite thresholds only. */
  roc: z.array(CurvePoint),
  /** x = recall, y = precision; finite thresholds only. */
  pr: z.array(CurvePoint),
});
export type CurveSet = z.infer<typeof CurveSet>;

export const Confusion = z.object({
  threshold: z.number().nullable(),
  /** Defect-labelled and flagged. */
  tp: z.number().int(),
  /** Good-labelled and flagged. */
  fp: z.number().int(),
  tn: z.number().int(),
  fn: z.number().int(),
});
export type Confusion = z.infer<typeof Confusion>;

export const ModelEvaluation = z.object({
  modelId: ModelId,
  version: z.number().int(),
  /** Labelled images the model scored (images it has not scored are left out). */
  good: z.number().int(),
  defect: z.number().int(),
  /** Labelled images of the batch without a score from this model. */
  unscored: z.number().int(),
  /** Null when the labelled images are not of both kinds. */
  total: CurveSet.nullable(),
  /** Each head alone (the normality head's anomaly score is its negation). */
  heads: z.record(z.string(), CurveSet),
  /** On the images the threshold's rates count (api/threshold.ts), the same as Review, the PDF and the CSV. */
  confusion: Confusion,
  /** How the threshold of the confusion counts was chosen (null: none set). */
  thresholdSource: ThresholdSource.nullable(),
  /** Why curves are missing, for people. */
  note: z.string().nullable(),
  /** Which images and scores the total's curves and the confusion use, for people. */
  basis: z.string(),
  /** How many good and defect images the total's curves and the confusion count. */
  counted: z.object({ good: z.number().int(), defect: z.number().int() }),
});
export type ModelEvaluation = z.infer<typeof ModelEvaluation>;

// ---------------------------------------------------------------------------------------
// Operations: name -> { input, output }
// ---------------------------------------------------------------------------------------

export const operations = {
  // Projects
  'project.create': {
    input: z.strictObject({
      /** Project name; also the folder name when `dir` is absent. */
      name: z.string().trim().min(1, 'project name must not be empty').max(120),
      /** Folder to create the project in (must be empty or absent). Defaults to <projectsRoot>/<name>. */
      dir: nonEmptyPath.optional(),
    }),
    output: ProjectInfo,
  },
  'project.open': { input: z.strictObject({ path: nonEmptyPath }), output: ProjectInfo },
  'project.current': { input: empty, output: ProjectInfo.nullable() },
  'project.listRecent': { input: empty, output: z.object({ projects: z.array(RecentProject) }) },
  'project.close': { input: empty, output: z.object({ closed: z.boolean() }) },

  // Import
  'import.run': {
    input: z.strictObject({
      source: ImportSource,
      /** Batch name shown in filters; default: the import time. */
      batch: z.string().trim().min(1).max(120).optional(),
      /** Apply the labels a data-set layout carries (default true). */
      applyLabels: z.boolean().optional(),
    }),
    output: ImportSummary,
  },
  'import.upload': {
    input: z.strictObject({
      files: z.array(UploadedFile).min(1, 'give at least one file').max(500),
      batch: z.string().trim().min(1).max(120).optional(),
    }),
    output: ImportSummary,
  },

  // Images
  'images.list': {
    input: z.strictObject({
      offset: z.number().int().min(0).default(0),
      limit: z.number().int().min(1).max(1000).default(100),
      filter: ImageFilter.optional(),
      sort: ImageSort.default('imported'),
    }),
    output: z.object({ total: z.number().int(), items: z.array(ImageSummary) }),
  },
  /** All ids matching a filter, for select-all and keyboard navigation. */
  'images.ids': {
    input: z.strictObject({ filter: ImageFilter.optional(), sort: ImageSort.default('imported') }),
    output: z.object({ ids: z.array(ImageId) }),
  },
  'images.get': { input: z.strictObject({ id: ImageId }), output: ImageDetail },
  'images.remove': {
    input: z.strictObject({ ids: z.array(ImageId).min(1).max(100_000) }),
    output: z.object({ removed: z.number().int() }),
  },
  /** Re-check every image file on disk (moved/deleted files become 'missing'). */
  'images.refresh': {
    input: empty,
    output: z.object({ ok: z.number().int(), missing: z.number().int() }),
  },

  // Labels and classes
  'labels.set': {
    input: z
      .strictObject({
        ids: z.array(ImageId).min(1, 'select at least one image').max(100_000),
        label: LabelValue,
        /** Defect class by id... */
        classId: ClassId.nullable().optional(),
        /** ...or by name (created when new). */
        className: z.string().trim().min(1).max(80).optional(),
      })
      .refine((v) => v.label === 'defect' || (v.classId == null && v.className === undefined), {
        message: 'a defect class can only be given with label "defect"',
      }),
    output: z.object({ updated: z.number().int() }),
  },
  'classes.list': { input: empty, output: z.object({ classes: z.array(DefectClass) }) },
  'classes.create': {
    input: z.strictObject({ name: z.string().trim().min(1, 'class name must not be empty').max(80) }),
    output: DefectClass,
  },

  /** The backend and device the engine runs on, and whether full mode can run (no project needed). */
  'system.info': { input: empty, output: SystemInfo },

  // Training
  'training.start': {
    input: z.strictObject({ settings: TrainSettingsInput.optional() }),
    output: z.object({ runId: RunId }),
  },
  'training.cancel': {
    input: z.strictObject({ runId: RunId.optional() }),
    output: z.object({ cancelled: z.boolean() }),
  },
  'training.status': {
    input: empty,
    output: z.object({
      run: TrainingRun.nullable(),
      progress: TrainProgressEvent.nullable(),
      /** The running run's losses so far, else the last run's (of this session). */
      losses: LossHistory,
      /** How the last run of this session ended (null while one runs, or none ran). */
      lastFinished: TrainingFinished.nullable(),
    }),
  },
  'training.runs': { input: empty, output: z.object({ runs: z.array(TrainingRun) }) },

  // Models
  'models.list': { input: empty, output: z.object({ models: z.array(ModelInfo) }) },
  'models.active': { input: empty, output: z.object({ model: ModelInfo.nullable() }) },
  'models.activate': { input: z.strictObject({ id: ModelId }), output: ModelInfo },

  // Scoring
  'scoring.start': {
    input: z.strictObject({ scope: ScoringScope.default('unscored') }),
    output: ScoringJob,
  },
  'scoring.cancel': { input: empty, output: z.object({ cancelled: z.boolean() }) },
  'scoring.status': {
    input: empty,
    output: z.object({
      job: ScoringJob.nullable(),
      done: z.number().int(),
      total: z.number().int(),
      /** Images not scored by the active model. */
      unscored: z.number().int(),
    }),
  },

  // Threshold
  'threshold.get': {
    input: empty,
    output: z.object({
      threshold: z.number().nullable(),
      source: ThresholdSource.nullable(),
      rates: ThresholdRates.nullable(),
      scale: ScoreScale.nullable(),
      queue: QueueCounts.nullable(),
      /** Reasons to trust the rates less (e.g. the unlabelled images unlike the labelled good ones). */
      warnings: z.array(z.string()),
    }),
  },
  /**
   * Sets the threshold: a value, a false-alarm target (e.g. 0.02: at most 2 % of the
   * scored good-labelled images above it, held-out ones when there are any), or a catch
   * target (e.g. 0.9: at least 90 % of the scored defect-labelled images above it), from
   * which the value is computed. Exactly one of the three.
   */
  'threshold.set': {
    input: z
      .strictObject({
        threshold: z.number().refine(Number.isFinite, 'threshold must be a finite number').optional(),
        falseAlarmRate: z
          .number()
          .min(0, 'falseAlarmRate must be between 0 and 0.5')
          .max(0.5, 'falseAlarmRate must be between 0 and 0.5')
          .optional(),
        catchRate: z
          .number()
          .min(0.01, 'catchRate must be between 0.01 and 1')
          .max(1, 'catchRate must be between 0.01 and 1')
          .optional(),
      })
      .refine(
        (v) => [v.threshold, v.falseAlarmRate, v.catchRate].filter((x) => x !== undefined).length === 1,
        { message: 'give either threshold or falseAlarmRate or catchRate (exactly one)' },
      ),
    output: z.object({
      threshold: z.number(),
      flagged: z.number().int(),
      source: ThresholdSource,
      rates: ThresholdRates,
      scale: ScoreScale.nullable(),
      queue: QueueCounts.nullable(),
      warnings: z.array(z.string()),
    }),
  },
  'threshold.histogram': {
    input: z.strictObject({ bins: z.number().int().min(2).max(200).default(30) }),
    output: z.object({
      min: z.number().nullable(),
      max: z.number().nullable(),
      threshold: z.number().nullable(),
      bins: z.array(HistogramBin),
    }),
  },

  /** The batches (imports) of the project, for report and evaluation pickers. */
  'images.batches': { input: empty, output: z.object({ batches: z.array(BatchInfo) }) },
  /** Marks a batch evaluation only (its labels never train) or back to training. */
  'images.setEvaluation': {
    input: z.strictObject({ batch: z.string().trim().min(1).max(200), evaluationOnly: z.boolean() }),
    output: z.object({ batch: z.string(), evaluationOnly: z.boolean() }),
  },
  /**
   * Labels from a data set's own label file by mapping its columns (project/label-file.ts):
   * e.g. HeadCT's labels.csv with idColumn "id", pathTemplate "head_ct/{id:03}.png",
   * labelColumn "hemorrhage", defectValues ["1"]. Labels only images already imported.
   */
  'labels.importFile': {
    input: z.strictObject({
      file: nonEmptyPath,
      idColumn: z.string().trim().min(1).max(120),
      pathTemplate: z.string().trim().min(1).max(1000),
      labelColumn: z.string().trim().min(1).max(120),
      defectValues: z.array(z.string().trim().min(1).max(120)).min(1).max(50).default(['1']),
    }),
    output: z.object({
      labelled: z.number().int(),
      good: z.number().int(),
      defect: z.number().int(),
      /** Rows that matched no image of the project, and up to five of the paths they tried. */
      unmatched: z.number().int(),
      tried: z.array(z.string()),
    }),
  },

  // Model versions (beyond list/active/activate) -------------------------------------
  /** Deletes a model version and its scores; the active model cannot be deleted. */
  'models.delete': { input: z.strictObject({ id: ModelId }), output: z.object({ deleted: z.boolean() }) },
  /** Writes one model version as a single `.swanmodel` file (a zip of the model folder). */
  'models.export': {
    input: z
      .strictObject({
        id: ModelId,
        /** The file to write (".swanmodel" is added when missing)... */
        file: nonEmptyPath.optional(),
        /** ...or a folder to write <project>-v<version>.swanmodel into; neither: the project's exports/ folder. */
        outDir: nonEmptyPath.optional(),
      })
      .refine((v) => v.file === undefined || v.outDir === undefined, {
        message: 'give either file or outDir, not both',
      }),
    output: z.object({ file: z.string(), bytes: z.number().int() }),
  },
  /**
   * Imports a `.swanmodel` as the next version (not active unless asked). Files of another
   * format version or backbone, damaged or truncated files, and zips whose entries would
   * land outside the model folder are refused; nothing is written for them.
   */
  'models.import': {
    input: z.strictObject({ file: nonEmptyPath, activate: z.boolean().default(false) }),
    output: ModelInfo,
  },

  // Evaluation ---------------------------------------------------------------------------
  /** ROC/PR curves, AUC-ROC and AP (model and each head) and confusion counts, on ground-truth labels. */
  'evaluate.run': {
    input: z.strictObject({
      /** One model, or two for a side-by-side comparison; default: the active model. */
      modelIds: z.array(ModelId).min(1).max(2).optional(),
      batch: BatchRef,
    }),
    output: z.object({ batch: z.string().nullable(), models: z.array(ModelEvaluation) }),
  },

  // Reports ------------------------------------------------------------------------------
  /**
   * An inspection report for a batch (or every image): a PDF (summary, histogram with the
   * threshold, every flagged image with thumbnail, heatmap and per-head scores) and/or a
   * CSV of every image. Progress arrives as `report.progress` events.
   */
  'report.export': {
    input: z.strictObject({
      batch: BatchRef,
      format: ReportFormat.default('both'),
      outDir: nonEmptyPath,
      /** Default: the active model. */
      modelId: ModelId.optional(),
    }),
    output: z.object({
      pdf: z.string().nullable(),
      csv: z.string().nullable(),
      batch: z.string().nullable(),
      modelId: ModelId.nullable(),
      modelVersion: z.number().int().nullable(),
      threshold: z.number().nullable(),
      counts: ReportCounts,
    }),
  },
} as const;

export type Operations = typeof operations;
export type OpName = keyof Operations;
/** What a caller sends (defaults still optional). */
export type OpInput<K extends OpName> = z.input<Operations[K]['input']>;
/** What the service receives after validation (defaults applied). */
export type OpParsedInput<K extends OpName> = z.output<Operations[K]['input']>;
export type OpOutput<K extends OpName> = z.output<Operations[K]['output']>;

export const opNames = Object.keys(operations) as OpName[];

export function isOpName(name: string): name is OpName {
  return Object.prototype.hasOwnProperty.call(operations, name);
}

// ---------------------------------------------------------------------------------------
// Events: pushed from main to every front door (WebSocket, IPC).
// ---------------------------------------------------------------------------------------

export const events = {
  'import.progress': z.object({
    done: z.number().int(),
    total: z.number().int(),
    current: z.string().optional(),
  }),
  'training.progress': TrainProgressEvent,
  'training.finished': TrainingFinished,
  'scoring.progress': z.object({ jobId: z.number().int(), done: z.number().int(), total: z.number().int() }),
  'scoring.finished': z.object({
    jobId: z.number().int(),
    status: z.enum(['done', 'failed', 'cancelled']),
    scored: z.number().int(),
    failed: z.array(z.object({ id: ImageId, error: z.string() })),
    error: z.string().nullable(),
  }),
  /**
   * A model's background cross-validation ended. 'done': its chosen weight and held-out
   * metrics are in (ModelInfo.metrics), and the queue is re-scored next; 'cancelled': a
   * retrain or scoring came first, it runs again after.
   */
  'validation.finished': z.object({
    modelId: ModelId,
    status: z.enum(['done', 'failed', 'cancelled']),
    error: z.string().nullable(),
  }),
  /** The engine worker died; it is restarted for the next job. */
  'worker.crashed': z.object({ message: z.string(), restarted: z.boolean() }),
  'report.progress': z.object({
    format: z.enum(['pdf', 'csv']),
    done: z.number().int(),
    total: z.number().int(),
  }),
  /** Images, labels or scores changed: views should refetch. */
  'project.changed': z.object({
    what: z.enum(['images', 'labels', 'classes', 'scores', 'models', 'threshold', 'project']),
  }),
} as const;

export type Events = typeof events;
export type EventName = keyof Events;
export type EventPayload<E extends EventName> = z.output<Events[E]>;
export type AnyEvent = { [E in EventName]: { event: E; payload: EventPayload<E> } }[EventName];

// ---------------------------------------------------------------------------------------
// Errors and the reply envelope
// ---------------------------------------------------------------------------------------

export const ErrorCode = z.enum([
  'invalid_input', // payload failed validation
  'unknown_operation',
  'no_project', // an operation needs an open project
  'not_found',
  'conflict', // e.g. project folder already exists, name taken
  'busy', // training/scoring already running
  'read_only', // project folder not writable
  'io', // file system problem
  'engine', // the engine refused (clear message from EngineError)
  'unauthorized',
  'too_large', // a request body over the server's limit (browser mode)
  'internal',
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

export const ApiErrorShape = z.object({ code: ErrorCode, message: z.string() });
export type ApiErrorShape = z.infer<typeof ApiErrorShape>;

export type ApiResult<K extends OpName> =
  { ok: true; data: OpOutput<K> } | { ok: false; error: ApiErrorShape };

/**
 * File kinds served by front doors: browser mode at `/files/<kind>/<imageId>`, Electron
 * through its custom protocol. Only images of the open project are ever served.
 */
export const fileKinds = ['thumb', 'image', 'heatmap'] as const;
export type FileKind = (typeof fileKinds)[number];

/** Path of a file URL in browser mode (the token is added as ?token=...). */
export function filePath(kind: FileKind, id: number): string {
  return `/files/${kind}/${id}`;
}
