/**
 * The model file: a folder holding manifest.json (what the model is, checksums of every
 * other file) and the trained state split into state.json (structure, small numbers) and
 * binary float32 files (weights.bin, reference.bin, knn.bin, patchcore.bin).
 *
 * Writes are atomic at the folder level: everything is written and fsynced into a temporary
 * sibling folder, which is then renamed into place; an existing model at the destination is
 * replaced only once the new one is complete. Loading checks the files against the schema
 * (model-schema.ts: fields, then shapes), the backbone when the caller says which it has, and
 * every file's size and SHA-256.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { DraState } from './heads/state';
import type { CombinationChoice } from './select';
import type { TrainSettings } from './types';
import { EngineError } from './types';
import {
  describeZodIssues,
  ManifestSchema,
  ManifestValidationSchema,
  MODEL_FORMAT_VERSIONS,
  shapeProblems,
  StateSkeletonSchema,
  type StateOutline,
} from './model-schema';

/** The file holding a full-mode model's backbone weights; its SHA-256 keys the model's own features. */
export const BACKBONE_FILE = 'backbone.bin';

/**
 * The version this build writes (model-schema.ts lists those it reads). 2: a full-mode model
 * also holds its fine-tuned backbone (BACKBONE_FILE, DraState.backbone); version 1 files (fast
 * mode only) still load.
 */
export const MODEL_FORMAT_VERSION = MODEL_FORMAT_VERSIONS[MODEL_FORMAT_VERSIONS.length - 1];

/** The backbone a model's features come from; the scorer loads the same one. */
export interface ManifestBackbone {
  id: string;
  inputSize: number;
  /** BackboneSpec.inputShape (elongated images); absent: square, as in every file from before. */
  inputShape?: { height: number; width: number };
  featureLayer: string;
  levels: number;
  /** BackboneSpec.tapLayers the heads read; absent when none (and in files from before). */
  tapLayers?: string[];
}

export interface ModelManifest {
  formatVersion: 1 | 2;
  createdAt: string;
  backbone: ManifestBackbone;
  /**
   * The TF.js backend that trained the model (backend.ts backendTag: 'wasm', 'cpu',
   * 'tensorflow', 'tensorflow-gpu') and its description. Absent in files from before.
   */
  backend?: ModelBackend;
  settings: TrainSettings;
  seed: number;
  trainingImageIds: string[];
  reference: { shapes: { h: number; w: number; c: number }[] };
  calibration: DraState['calibration'];
  metrics: Record<string, number>;
  /**
   * How `metrics` were measured, and the out-of-fold scores of the training images (held-out
   * scores: each image scored by a fold model that did not train on it). Optional: models
   * trained without validation, and files written before it existed, have none.
   */
  validation?: ManifestValidation;
  /** How much the supervised heads count, chosen on the validation, and why (engine/select.ts). */
  combination?: CombinationChoice;
  files: Record<string, { sha256: string; bytes: number }>;
}

export interface ModelBackend {
  tag: string;
  description: string;
}

export interface ManifestValidation {
  method: string;
  folds: number;
  nGood: number;
  nDefect: number;
  seed: number;
  notes: string[];
  /** By training image id. */
  /** z: the total against the fold model's training normals (validate.ts); absent in older files. */
  outOfFold: Record<
    string,
    { label: 'good' | 'defect'; fold?: number; total: number; z?: number; perHead: Record<string, number> }
  >;
  /** Every fold model's scores of images no label stood for (validate.ts ReferenceScores). */
  reference?: { ids: string[]; folds: number[][] };
}

export interface SavedModel {
  manifest: ModelManifest;
  state: DraState;
}

/** What a trainer knows when it saves: the manifest's descriptive fields are derived from it. */
export interface SaveModelInput {
  state: DraState;
  backbone: ManifestBackbone;
  backend?: ModelBackend;
  trainingImageIds: string[];
  metrics?: Record<string, number>;
  validation?: ManifestValidation;
  createdAt?: string;
}

export type ModelFileProblem = 'missing' | 'version' | 'backbone' | 'inputSize' | 'checksum' | 'corrupt';

export class ModelFileError extends EngineError {
  constructor(
    message: string,
    readonly problem: ModelFileProblem,
  ) {
    super(message);
    this.name = 'ModelFileError';
  }
}

const MANIFEST = 'manifest.json';
const STATE = 'state.json';

/** Which binary file each top-level part of the state goes to. */
function binFileFor(topKey: string): string {
  if (topKey === 'reference') return 'reference.bin';
  if (topKey === 'knn') return 'knn.bin';
  if (topKey === 'patchcore') return 'patchcore.bin';
  if (topKey === 'backbone') return BACKBONE_FILE;
  return 'weights.bin';
}

interface ArrayRef {
  $f32: { file: string; offset: number; length: number };
}

/** Replaces every Float32Array in the state by a reference into a binary file. */
function splitState(state: DraState): { skeleton: unknown; bins: Map<string, Float32Array[]> } {
  const bins = new Map<string, Float32Array[]>();
  const sizes = new Map<string, number>();
  const walk = (v: unknown, topKey: string): unknown => {
    if (v instanceof Float32Array) {
      const file = binFileFor(topKey);
      const offset = sizes.get(file) ?? 0;
      if (!bins.has(file)) bins.set(file, []);
      bins.get(file)!.push(v);
      sizes.set(file, offset + v.length);
      return { $f32: { file, offset, length: v.length } } satisfies ArrayRef;
    }
    if (ArrayBuffer.isView(v))
      throw new EngineError('Model state holds a typed array other than Float32Array.');
    if (Array.isArray(v)) return v.map((x) => walk(x, topKey));
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, topKey)]));
    }
    return v;
  };
  const skeleton = Object.fromEntries(Object.entries(state).map(([k, v]) => [k, walk(v, k)]));
  return { skeleton, bins };
}

/** Replaces every array reference of the skeleton by what `resolve` makes of it. */
function joinState(skeleton: unknown, resolve: (ref: ArrayRef['$f32']) => unknown): unknown {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      const ref = (v as Partial<ArrayRef>).$f32;
      if (ref) return resolve(ref);
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return walk(skeleton);
}

function sha256(buf: Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}

async function writeFileSynced(file: string, data: Uint8Array): Promise<void> {
  const fh = await fs.open(file, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  // Directory fsync makes the renames durable; some platforms (Windows) cannot open a directory.
  try {
    const fh = await fs.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* best effort */
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

function isSavedModel(m: SavedModel | SaveModelInput): m is SavedModel {
  return 'manifest' in m && !!m.manifest;
}

/**
 * Saves a model folder at `dir` (replacing any model there once the new one is complete).
 * Returns the manifest as written (with the files' checksums).
 */
export async function saveModel(dir: string, model: SavedModel | SaveModelInput): Promise<ModelManifest> {
  const state = model.state;
  const base = isSavedModel(model)
    ? model.manifest
    : {
        backbone: model.backbone,
        backend: model.backend,
        trainingImageIds: model.trainingImageIds,
        metrics: model.metrics ?? {},
        validation: model.validation,
        createdAt: model.createdAt ?? new Date().toISOString(),
      };
  const { skeleton, bins } = splitState(state);
  const payload = new Map<string, Uint8Array>();
  payload.set(STATE, new TextEncoder().encode(JSON.stringify(skeleton)));
  for (const [file, arrays] of bins) {
    const total = arrays.reduce((n, a) => n + a.length, 0);
    const joined = new Float32Array(total);
    let o = 0;
    for (const a of arrays) {
      joined.set(a, o);
      o += a.length;
    }
    payload.set(file, new Uint8Array(joined.buffer));
  }
  const files: ModelManifest['files'] = {};
  for (const [name, data] of payload) files[name] = { sha256: sha256(data), bytes: data.byteLength };
  const manifest: ModelManifest = {
    formatVersion: MODEL_FORMAT_VERSION,
    createdAt: base.createdAt,
    backbone: {
      id: base.backbone.id,
      inputSize: base.backbone.inputSize,
      ...(base.backbone.inputShape ? { inputShape: { ...base.backbone.inputShape } } : {}),
      featureLayer: base.backbone.featureLayer,
      levels: base.backbone.levels,
      ...(base.backbone.tapLayers && base.backbone.tapLayers.length > 0
        ? { tapLayers: [...base.backbone.tapLayers] }
        : {}),
    },
    ...(base.backend ? { backend: { tag: base.backend.tag, description: base.backend.description } } : {}),
    settings: state.settings,
    seed: state.settings.seed,
    trainingImageIds: [...base.trainingImageIds],
    reference: { shapes: state.reference.map(({ h, w, c }) => ({ h, w, c })) },
    calibration: state.calibration,
    metrics: { ...base.metrics },
    ...(base.validation ? { validation: base.validation } : {}),
    ...(state.combination ? { combination: state.combination } : {}),
    files,
  };

  const target = path.resolve(dir);
  const parent = path.dirname(target);
  await fs.mkdir(parent, { recursive: true });
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const tmp = path.join(parent, `.${path.basename(target)}.tmp-${tag}`);
  const old = path.join(parent, `.${path.basename(target)}.old-${tag}`);
  await fs.mkdir(tmp);
  try {
    for (const [name, data] of payload) await writeFileSynced(path.join(tmp, name), data);
    // The manifest goes last: a folder with a manifest has all its files.
    await writeFileSynced(
      path.join(tmp, MANIFEST),
      new TextEncoder().encode(JSON.stringify(manifest, null, 2)),
    );
    await syncDir(tmp);
    const hadOld = await exists(target);
    if (hadOld) await fs.rename(target, old);
    try {
      await fs.rename(tmp, target);
    } catch (e) {
      if (hadOld) await fs.rename(old, target).catch(() => undefined);
      throw e;
    }
    await syncDir(parent);
    if (hadOld) await fs.rm(old, { recursive: true, force: true });
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
  return manifest;
}

async function readRequired(dir: string, name: string, maxBytes = Infinity): Promise<Buffer> {
  try {
    if (Number.isFinite(maxBytes)) {
      const st = await fs.stat(path.join(dir, name));
      if (st.size > maxBytes)
        throw new ModelFileError(
          `Model file is corrupt: ${name} is ${st.size} bytes, more than such a file ever holds (${maxBytes}).`,
          'corrupt',
        );
    }
    return await fs.readFile(path.join(dir, name));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ModelFileError(`Model file is incomplete: ${name} is missing in ${dir}.`, 'missing');
    }
    throw e;
  }
}

/** manifest.json and state.json are small JSON; a bigger one is not a model file. */
const MAX_JSON_BYTES = 64 * 1024 ** 2;

function parseJson(buf: Buffer, name: string): unknown {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch {
    throw new ModelFileError(`Model file is corrupt: ${name} is not valid JSON.`, 'corrupt');
  }
}

function corrupt(message: string): ModelFileError {
  return new ModelFileError(`Model file is corrupt: ${message}`, 'corrupt');
}

/** What the checks found, before any weight is read into memory. */
export interface CheckedModel {
  manifest: ModelManifest;
  skeleton: unknown;
}

/**
 * Checks a model folder without loading its weights: manifest.json and state.json against
 * the schema (engine/model-schema.ts), every array reference inside its file, every shape
 * against the others and the settings, and (with `verifyFiles`) every file's size and
 * SHA-256, streamed. Throws ModelFileError naming the field or the file.
 */
export async function checkModel(
  dir: string,
  expect: { backboneId?: string; inputSize?: number } = {},
  opts: { verifyFiles?: boolean } = {},
): Promise<CheckedModel> {
  const raw = parseJson(await readRequired(dir, MANIFEST, MAX_JSON_BYTES), MANIFEST);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw corrupt(`${MANIFEST} is not an object.`);
  const version = (raw as { formatVersion?: unknown }).formatVersion;
  if (!(MODEL_FORMAT_VERSIONS as readonly unknown[]).includes(version)) {
    throw new ModelFileError(
      `Model file format version ${String(version)} is not supported (this version of Swan Inspector reads version ${MODEL_FORMAT_VERSIONS.join(', ')}).`,
      'version',
    );
  }
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) throw corrupt(describeZodIssues(MANIFEST, parsed.error.issues));
  const manifest = parsed.data as unknown as ModelManifest;
  if (expect.backboneId !== undefined && manifest.backbone.id !== expect.backboneId) {
    throw new ModelFileError(
      `Model was trained on backbone '${manifest.backbone.id}', not '${expect.backboneId}'.`,
      'backbone',
    );
  }
  if (expect.inputSize !== undefined && manifest.backbone.inputSize !== expect.inputSize) {
    throw new ModelFileError(
      `Model was trained at input size ${manifest.backbone.inputSize}, not ${expect.inputSize}.`,
      'inputSize',
    );
  }
  // Validation is descriptive: a malformed one (hand-edited file) is dropped, not trusted.
  if (manifest.validation !== undefined && !ManifestValidationSchema.safeParse(manifest.validation).success)
    delete manifest.validation;
  const files = manifest.files;
  if (!files[STATE]) throw corrupt(`${MANIFEST} does not list ${STATE}.`);
  if (opts.verifyFiles) {
    for (const [name, info] of Object.entries(files)) await verifyFileStreamed(dir, name, info);
  }
  const stateBuf = await readRequired(dir, STATE, MAX_JSON_BYTES);
  if (stateBuf.byteLength !== files[STATE].bytes || sha256(stateBuf) !== files[STATE].sha256)
    throw checksumError(STATE, stateBuf.byteLength, files[STATE].bytes);
  const skeleton = parseJson(stateBuf, STATE);
  const state = StateSkeletonSchema.safeParse(skeleton);
  if (!state.success) throw corrupt(describeZodIssues(STATE, state.error.issues));
  // Every reference inside a listed binary file; the outline stands for the arrays.
  const floats = new Map<string, number>();
  for (const [name, info] of Object.entries(files)) {
    if (!name.endsWith('.bin')) continue;
    if (info.bytes % 4 !== 0) throw corrupt(`${name} is not float32 data (${info.bytes} bytes).`);
    floats.set(name, info.bytes / 4);
  }
  const outline = joinState(state.data, (ref) => {
    const n = floats.get(ref.file);
    if (n === undefined) throw corrupt(`${STATE} points into ${ref.file}, which ${MANIFEST} does not list.`);
    if (ref.offset + ref.length > n) throw corrupt(`${STATE} points outside ${ref.file}.`);
    return { length: ref.length };
  }) as unknown as StateOutline;
  const problems = shapeProblems(parsed.data, outline);
  if (problems.length) throw corrupt(`the shapes do not fit together: ${problems.slice(0, 3).join('; ')}.`);
  return { manifest, skeleton };
}

function checksumError(name: string, got: number, expected: number): ModelFileError {
  return new ModelFileError(
    `Model file is damaged: ${name} does not match its checksum in ${MANIFEST} (${got} bytes, expected ${expected}).`,
    'checksum',
  );
}

async function verifyFileStreamed(dir: string, name: string, info: { sha256: string; bytes: number }) {
  const file = path.join(dir, name);
  const st = await fs.stat(file).catch(() => null);
  if (!st?.isFile())
    throw new ModelFileError(`Model file is incomplete: ${name} is missing in ${dir}.`, 'missing');
  if (st.size !== info.bytes) throw checksumError(name, st.size, info.bytes);
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  if (hash.digest('hex') !== info.sha256) throw checksumError(name, st.size, info.bytes);
}

/** Loads and verifies a model folder. `expect` names the backbone the caller will feed it. */
export async function loadModel(
  dir: string,
  expect: { backboneId?: string; inputSize?: number } = {},
): Promise<SavedModel> {
  const { manifest, skeleton } = await checkModel(dir, expect);
  const bins = new Map<string, Float32Array>();
  for (const [name, info] of Object.entries(manifest.files)) {
    if (name === STATE) continue;
    const buf = await readRequired(dir, name);
    if (buf.byteLength !== info.bytes || sha256(buf) !== info.sha256)
      throw checksumError(name, buf.byteLength, info.bytes);
    if (!name.endsWith('.bin')) continue;
    // Copy: a Buffer may share a pool and be unaligned for a Float32Array view.
    const copy = new Uint8Array(buf.byteLength);
    copy.set(buf);
    const data = new Float32Array(copy.buffer);
    if (!data.every(Number.isFinite))
      throw corrupt(`${name} holds numbers that are not finite (NaN or infinity).`);
    bins.set(name, data);
  }
  const state = joinState(skeleton, (ref) => bins.get(ref.file)!.slice(ref.offset, ref.offset + ref.length));
  return { manifest, state: state as DraState };
}
