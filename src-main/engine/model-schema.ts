/**
 * The model file's schema (zod): manifest.json and state.json, then the shapes of every
 * array checked against each other, the settings and the file sizes. A file that fails is
 * refused with a message naming the field (`state.json: weights.residual.conv: ...`).
 *
 * Adding a field: give it `.optional()` in the object it belongs to (older files lack it).
 * A new format version: add it to MODEL_FORMAT_VERSIONS; every object is loose, so a newer
 * writer's extra fields pass through untouched.
 */
import { z } from 'zod';

/** Format versions this build reads. The writer writes the last one. */
export const MODEL_FORMAT_VERSIONS = [1, 2] as const;

const int = z.number().int();
const count = int.min(0);
const positive = int.min(1);
const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const fileName = z
  .string()
  .regex(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/, 'must be a plain file name (no folder, no leading dot)');
const formatVersion = z.number().refine((v) => (MODEL_FORMAT_VERSIONS as readonly number[]).includes(v), {
  message: `must be one of ${MODEL_FORMAT_VERSIONS.join(', ')}`,
});

const shape = z.looseObject({ h: positive.max(4096), w: positive.max(4096), c: positive.max(65536) });

/** The settings the engine reads when scoring; the rest are descriptive and pass through. */
export const TrainSettingsSchema = z.looseObject({
  seed: int,
  mode: z.enum(['fast', 'full']),
  loss: z.string(),
  pyramidLevels: positive.max(6),
  topKRatio: z.number().gt(0).max(1),
  referenceCount: count,
  knnHead: z.boolean(),
  heads: z.array(z.enum(['seen', 'pseudo', 'residual', 'normality'])).optional(),
  combine: z.enum(['sum', 'calibrated', 'balanced']).optional(),
  knnPatch: z.boolean().optional(),
  knnWeight: finite.optional(),
  gaussianHead: z.boolean().optional(),
  gaussianWeight: finite.optional(),
  patchcoreHead: z.boolean().optional(),
  patchcoreWeight: finite.optional(),
  globalHead: z.boolean().optional(),
  globalWeight: finite.optional(),
  patchHidden: count.optional(),
});

const headStats = z.looseObject({ mean: finite, std: finite });

export const ManifestValidationSchema = z.looseObject({
  method: z.string(),
  folds: int,
  nGood: count,
  nDefect: count,
  seed: int,
  notes: z.array(z.string()),
  outOfFold: z.record(
    z.string(),
    z.looseObject({
      label: z.enum(['good', 'defect']),
      total: finite,
      perHead: z.record(z.string(), finite),
    }),
  ),
});

export const ManifestSchema = z.looseObject({
  formatVersion,
  createdAt: z.string(),
  backbone: z.looseObject({
    id: z.string().min(1),
    inputSize: int.min(32).max(4096),
    inputShape: z.object({ height: int.min(32).max(8192), width: int.min(32).max(8192) }).optional(),
    featureLayer: z.string().min(1),
    levels: positive.max(6),
  }),
  /** The TF.js backend that trained it (absent in files from before). */
  backend: z.looseObject({ tag: z.string(), description: z.string() }).optional(),
  settings: TrainSettingsSchema,
  seed: int,
  trainingImageIds: z.array(z.string()),
  reference: z.looseObject({ shapes: z.array(shape).min(1).max(6) }),
  calibration: z.record(z.string(), headStats),
  /** Numbers the trainer measured; other helpers may add keys (any JSON value). */
  metrics: z.record(z.string(), z.unknown()),
  /** Descriptive: a malformed one is dropped by the loader, not trusted (see loadModel). */
  validation: z.unknown().optional(),
  /** Descriptive copy of state.combination (engine/select.ts). */
  combination: z.unknown().optional(),
  files: z.record(fileName, z.looseObject({ sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: count })),
});

/** A float32 array as state.json stores it: a slice of one of the binary files. */
const arrayRef = z.strictObject({
  $f32: z.strictObject({ file: fileName, offset: count, length: count }),
});

/**
 * state.json with every array still a reference. The same object schema checks the joined
 * state: `arr` is whatever stands for an array (a reference here, an outline after joining).
 */
function stateSchema<A extends z.ZodType>(arr: A) {
  return z.looseObject({
    formatVersion,
    settings: TrainSettingsSchema,
    levels: z.array(shape).min(1).max(6),
    weights: z.looseObject({
      channels: positive,
      patch: z.looseObject({
        w: arr,
        b: arr,
        hidden: count.optional(),
        out: arr.optional(),
        outB: arr.optional(),
      }),
      residual: z.looseObject({
        reduceTo: count,
        reduce: arr,
        width: positive,
        conv: arr,
        convB: arr,
        gamma: arr,
        beta: arr,
        runMean: arr,
        runVar: arr,
        out: arr,
        outB: arr,
      }),
      normality: z.looseObject({ hidden: positive, w1: arr, b1: arr, w2: arr, b2: arr }),
    }),
    reference: z.array(z.looseObject({ h: positive, w: positive, c: positive, data: arr })).min(1),
    hasSeen: z.boolean(),
    calibration: z.record(z.string(), headStats),
    knn: z
      .looseObject({
        dim: positive,
        count: positive,
        bank: arr,
        patch: z.looseObject({ patchesPerImage: positive, h: positive, w: positive, bank: arr }).optional(),
      })
      .optional(),
    gaussian: z
      .looseObject({ dim: positive, count: positive, shrink: finite, mean: arr, whiten: arr })
      .optional(),
    patchcore: z
      .looseObject({
        dim: positive,
        count: positive,
        h: positive,
        w: positive,
        from: count,
        bank: arr,
        source: arr,
        projection: arr.optional(),
        taps: z.array(z.string()),
        fingerprints: arr,
      })
      .optional(),
    global: z
      .looseObject({
        source: z.enum(['pooled', 'level0']),
        dim: positive,
        mean: arr,
        scale: arr,
        w: arr,
        b: finite,
        defects: count.optional(),
      })
      .optional(),
    backbone: z.array(z.looseObject({ name: z.string(), shape: z.array(count), data: arr })).optional(),
    /** The supervised heads' weight chosen on the validation (engine/select.ts); its evidence is descriptive. */
    combination: z.looseObject({ supervisedWeight: finite.min(0) }).optional(),
  });
}

export const StateSkeletonSchema = stateSchema(arrayRef);

export type ManifestParsed = z.infer<typeof ManifestSchema>;
type Lengthy = { length: number };
/** A state whose arrays are anything with a length (Float32Array, or an outline of one). */
export type StateOutline = z.infer<ReturnType<typeof stateSchema<z.ZodType<Lengthy>>>>;

/** "state.json: weights.patch.w: expected ..., got ..." for the first few issues. */
export function describeZodIssues(file: string, issues: z.core.$ZodIssue[]): string {
  const parts = issues.slice(0, 3).map((i) => {
    const where = i.path.length ? i.path.map(String).join('.') : '(the whole file)';
    return `${where}: ${i.message}`;
  });
  const more = issues.length > 3 ? ` (and ${issues.length - 3} more)` : '';
  return `${file}: ${parts.join('; ')}${more}`;
}

/**
 * Shape rules the heads rely on (see heads/init.ts for how each array is made). Returns the
 * problems as "<field>: <what is wrong>"; empty when the state is consistent.
 */
export function shapeProblems(manifest: ManifestParsed, state: StateOutline): string[] {
  const out: string[] = [];
  const expectLen = (field: string, a: Lengthy | undefined, n: number) => {
    if (a === undefined) out.push(`${field}: missing (expected ${n} numbers)`);
    else if (a.length !== n) out.push(`${field}: holds ${a.length} numbers, expected ${n}`);
  };
  const levels = state.levels;
  if (manifest.backbone.levels !== levels.length)
    out.push(`backbone.levels: ${manifest.backbone.levels}, but state.json has ${levels.length} level(s)`);
  if (state.settings.pyramidLevels !== levels.length)
    out.push(
      `settings.pyramidLevels: ${state.settings.pyramidLevels}, but the state has ${levels.length} level(s)`,
    );
  if (manifest.reference.shapes.length !== levels.length)
    out.push(
      `reference.shapes: ${manifest.reference.shapes.length} level(s), the state has ${levels.length}`,
    );
  if (state.reference.length !== levels.length)
    out.push(`state reference: ${state.reference.length} map(s) for ${levels.length} level(s)`);
  const c = state.weights.channels;
  levels.forEach((l, i) => {
    if (l.c !== c) out.push(`levels.${i}.c: ${l.c} channels, the heads read ${c}`);
    const m = manifest.reference.shapes[i];
    if (m && (m.h !== l.h || m.w !== l.w || m.c !== l.c))
      out.push(`reference.shapes.${i}: ${m.h}x${m.w}x${m.c}, the state's level is ${l.h}x${l.w}x${l.c}`);
    const r = state.reference[i];
    if (r) {
      if (r.h !== l.h || r.w !== l.w || r.c !== l.c)
        out.push(`reference.${i}: ${r.h}x${r.w}x${r.c}, the level is ${l.h}x${l.w}x${l.c}`);
      expectLen(`reference.${i}.data`, r.data, r.h * r.w * r.c);
    }
  });
  const { patch, residual, normality } = state.weights;
  const ph = patch.hidden ?? 0;
  if (ph > 0) {
    expectLen('weights.patch.w', patch.w, c * 2 * ph);
    expectLen('weights.patch.b', patch.b, 2 * ph);
    expectLen('weights.patch.out', patch.out, 2 * ph * 2);
    expectLen('weights.patch.outB', patch.outB, 2);
  } else {
    expectLen('weights.patch.w', patch.w, c * 2);
    expectLen('weights.patch.b', patch.b, 2);
  }
  const cin = residual.reduceTo > 0 ? residual.reduceTo : c;
  const width = residual.width;
  expectLen('weights.residual.reduce', residual.reduce, residual.reduceTo > 0 ? c * residual.reduceTo : 0);
  expectLen('weights.residual.conv', residual.conv, 9 * cin * width);
  for (const k of ['convB', 'gamma', 'beta', 'runMean', 'runVar', 'out'] as const)
    expectLen(`weights.residual.${k}`, residual[k], width);
  expectLen('weights.residual.outB', residual.outB, 1);
  expectLen('weights.normality.w1', normality.w1, c * normality.hidden);
  expectLen('weights.normality.b1', normality.b1, normality.hidden);
  expectLen('weights.normality.w2', normality.w2, normality.hidden);
  expectLen('weights.normality.b2', normality.b2, 1);
  const l0 = levels[0];
  if (state.knn) {
    const k = state.knn;
    if (k.dim !== c) out.push(`knn.dim: ${k.dim}, the feature maps have ${c} channels`);
    expectLen('knn.bank', k.bank, k.count * k.dim);
    if (k.patch) {
      if (k.patch.h !== l0.h || k.patch.w !== l0.w || k.patch.patchesPerImage !== l0.h * l0.w)
        out.push(
          `knn.patch: ${k.patch.h}x${k.patch.w} (${k.patch.patchesPerImage} per image), level 0 is ${l0.h}x${l0.w}`,
        );
      expectLen('knn.patch.bank', k.patch.bank, k.count * k.patch.patchesPerImage * k.dim);
    }
  } else if (state.settings.knnHead) out.push('knn: settings.knnHead is on but the state has no kNN bank');
  if (state.gaussian) {
    const g = state.gaussian;
    if (g.dim !== c) out.push(`gaussian.dim: ${g.dim}, the feature maps have ${c} channels`);
    expectLen('gaussian.mean', g.mean, g.dim);
    expectLen('gaussian.whiten', g.whiten, g.dim * g.dim);
  }
  if (state.patchcore) {
    const p = state.patchcore;
    expectLen('patchcore.bank', p.bank, p.count * p.dim);
    expectLen('patchcore.source', p.source, p.count);
    if (p.fingerprints.length % 2 !== 0) out.push('patchcore.fingerprints: an odd count of numbers');
    if (p.projection && p.projection.length % p.dim !== 0)
      out.push(`patchcore.projection: ${p.projection.length} numbers, not a multiple of ${p.dim}`);
  }
  if (state.global) {
    const g = state.global;
    if (g.source === 'level0' && g.dim !== 2 * c)
      out.push(`global.dim: ${g.dim}, the level-0 statistics have ${2 * c} values`);
    for (const k of ['mean', 'scale', 'w'] as const) expectLen(`global.${k}`, g[k], g.dim);
  }
  state.backbone?.forEach((b, i) =>
    expectLen(
      `backbone.${i}.data`,
      b.data,
      b.shape.reduce((n, d) => n * d, 1),
    ),
  );
  return out;
}
