/**
 * The model file: a folder holding manifest.json (what the model is, checksums of every
 * other file) and the trained state split into state.json (structure, small numbers) and
 * binary float32 files (weights.bin, reference.bin, knn.bin).
 *
 * Writes are atomic at the folder level: everything is written and fsynced into a temporary
 * sibling folder, which is then renamed into place; an existing model at the destination is
 * replaced only once the new one is complete. Loading verifies the format version, the
 * backbone (when the caller says which it has) and every file's size and SHA-256.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { DraState } from './heads/state';
import type { TrainSettings } from './types';
import { EngineError } from './types';

export const MODEL_FORMAT_VERSION = 1;

export interface ModelManifest {
  formatVersion: 1;
  createdAt: string;
  backbone: { id: string; inputSize: number; featureLayer: string; levels: number };
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
  outOfFold: Record<string, { label: 'good' | 'defect'; total: number; perHead: Record<string, number> }>;
}

export interface SavedModel {
  manifest: ModelManifest;
  state: DraState;
}

/** What a trainer knows when it saves: the manifest's descriptive fields are derived from it. */
export interface SaveModelInput {
  state: DraState;
  backbone: { id: string; inputSize: number; featureLayer: string; levels: number };
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

function joinState(skeleton: unknown, bins: Map<string, Float32Array>): DraState {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      const ref = (v as Partial<ArrayRef>).$f32;
      if (ref) {
        const data = bins.get(ref.file);
        if (!data || ref.offset < 0 || ref.offset + ref.length > data.length) {
          throw new ModelFileError(`Model file is corrupt: ${STATE} points outside ${ref.file}.`, 'corrupt');
        }
        return data.slice(ref.offset, ref.offset + ref.length);
      }
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return walk(skeleton) as DraState;
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
      featureLayer: base.backbone.featureLayer,
      levels: base.backbone.levels,
    },
    ...(base.backend ? { backend: { tag: base.backend.tag, description: base.backend.description } } : {}),
    settings: state.settings,
    seed: state.settings.seed,
    trainingImageIds: [...base.trainingImageIds],
    reference: { shapes: state.reference.map(({ h, w, c }) => ({ h, w, c })) },
    calibration: state.calibration,
    metrics: { ...base.metrics },
    ...(base.validation ? { validation: base.validation } : {}),
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

async function readRequired(dir: string, name: string): Promise<Buffer> {
  try {
    return await fs.readFile(path.join(dir, name));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ModelFileError(`Model file is incomplete: ${name} is missing in ${dir}.`, 'missing');
    }
    throw e;
  }
}

/** Loads and verifies a model folder. `expect` names the backbone the caller will feed it. */
export async function loadModel(
  dir: string,
  expect: { backboneId?: string; inputSize?: number } = {},
): Promise<SavedModel> {
  const manifestBuf = await readRequired(dir, MANIFEST);
  let manifest: ModelManifest;
  try {
    manifest = JSON.parse(manifestBuf.toString('utf8')) as ModelManifest;
  } catch {
    throw new ModelFileError(`Model file is corrupt: ${MANIFEST} in ${dir} is not valid JSON.`, 'corrupt');
  }
  if (!manifest || typeof manifest !== 'object') {
    throw new ModelFileError(`Model file is corrupt: ${MANIFEST} in ${dir} is not an object.`, 'corrupt');
  }
  if (manifest.formatVersion !== MODEL_FORMAT_VERSION) {
    throw new ModelFileError(
      `Model file format version ${String(manifest.formatVersion)} is not supported (this version of Swan Inspector reads version ${MODEL_FORMAT_VERSION}).`,
      'version',
    );
  }
  if (!manifest.backbone || !manifest.files || typeof manifest.files !== 'object') {
    throw new ModelFileError(
      `Model file is corrupt: ${MANIFEST} lacks its backbone or file list.`,
      'corrupt',
    );
  }
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
  const v = manifest.validation as Partial<ManifestValidation> | undefined;
  if (v !== undefined && !(v && typeof v === 'object' && v.outOfFold && typeof v.outOfFold === 'object'))
    delete manifest.validation;
  if (!manifest.files[STATE])
    throw new ModelFileError(`Model file is corrupt: ${MANIFEST} does not list ${STATE}.`, 'corrupt');

  const contents = new Map<string, Buffer>();
  for (const [name, info] of Object.entries(manifest.files)) {
    if (name.includes('/') || name.includes('\\') || name.startsWith('.')) {
      throw new ModelFileError(`Model file is corrupt: bad file name '${name}' in ${MANIFEST}.`, 'corrupt');
    }
    const buf = await readRequired(dir, name);
    if (buf.byteLength !== info.bytes || sha256(buf) !== info.sha256) {
      throw new ModelFileError(
        `Model file is damaged: ${name} does not match its checksum in ${MANIFEST} (${buf.byteLength} bytes, expected ${info.bytes}).`,
        'checksum',
      );
    }
    contents.set(name, buf);
  }
  const bins = new Map<string, Float32Array>();
  for (const [name, buf] of contents) {
    if (!name.endsWith('.bin')) continue;
    if (buf.byteLength % 4 !== 0)
      throw new ModelFileError(`Model file is corrupt: ${name} is not float32 data.`, 'corrupt');
    // Copy: a Buffer may share a pool and be unaligned for a Float32Array view.
    const copy = new Uint8Array(buf.byteLength);
    copy.set(buf);
    bins.set(name, new Float32Array(copy.buffer));
  }
  let skeleton: unknown;
  try {
    skeleton = JSON.parse(contents.get(STATE)!.toString('utf8'));
  } catch {
    throw new ModelFileError(`Model file is corrupt: ${STATE} is not valid JSON.`, 'corrupt');
  }
  const state = joinState(skeleton, bins);
  if (state.formatVersion !== MODEL_FORMAT_VERSION || !state.weights || !Array.isArray(state.reference)) {
    throw new ModelFileError(`Model file is corrupt: ${STATE} does not describe a DRA model.`, 'corrupt');
  }
  return { manifest, state };
}
