/**
 * Where the app finds the pretrained backbone, in development and when packaged, and the
 * one place that tells the engine (through SWAN_BACKBONE_DIR, read by the engine's
 * defaultBackboneSpec). No Electron import: the Electron main, the browser-mode server and
 * tests all call it, passing `process.resourcesPath` when there is one.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { findPackageRoot } from './engine/util/package-root';

/** The engine's MOBILENET_DIR_NAME (not imported: that module loads TF.js); a test checks they agree. */
export const BACKBONE_DIR_NAME = 'mobilenet_v1_0.75_224';
/** Folder under the app's resources (packaged) or resources/ (development) holding backbones. */
export const RESOURCES_MODELS = 'models';

/** Where one backbone lives: its folder name, the variable that tells the engine, its marker file. */
export interface BackboneFolder {
  dirName: string;
  envVar: string;
  /** A folder is usable when it holds this entry. */
  marker: string;
}

/** The fast backbone the app needs (MobileNetV1-0.75). */
export const MOBILENET_FOLDER: BackboneFolder = {
  dirName: BACKBONE_DIR_NAME,
  envVar: 'SWAN_BACKBONE_DIR',
  marker: 'model.json',
};

/** The accurate backbone (ResNet-50 v2 stages 1-3; the engine's RESNET50_DIR_NAME), optional. */
export const RESNET50_FOLDER: BackboneFolder = {
  dirName: 'resnet50_v2_imagenet',
  envVar: 'SWAN_RESNET50_DIR',
  marker: 'weights',
};

export interface BackboneLookup {
  /** Electron's process.resourcesPath, when running in Electron (packaged or not). */
  resourcesPath?: string;
  /** The folder holding package.json; found from this file when absent. */
  appRoot?: string;
  env?: NodeJS.ProcessEnv;
  /** Which backbone (default: MobileNet). */
  folder?: BackboneFolder;
}

export type BackboneFound = { ok: true; dir: string; from: string; lookedIn: string[] };
export type BackboneMissing = { ok: false; lookedIn: string[]; message: string };

/** Every place the backbone may be, in order, with what each place is. */
export function backboneCandidates(opts: BackboneLookup = {}): { dir: string; from: string }[] {
  const env = opts.env ?? process.env;
  const { dirName, envVar } = opts.folder ?? MOBILENET_FOLDER;
  const out: { dir: string; from: string }[] = [];
  if (env[envVar]) out.push({ dir: resolve(env[envVar]), from: envVar });
  if (opts.resourcesPath) {
    out.push({ dir: join(opts.resourcesPath, RESOURCES_MODELS, dirName), from: 'app resources' });
  }
  const root = opts.appRoot ?? findPackageRoot() ?? null;
  if (root) {
    // Development: copied by scripts/copy-backbone.mjs, or the shared folder beside the repository.
    out.push({
      dir: join(root, 'resources', RESOURCES_MODELS, dirName),
      from: 'resources/ (development)',
    });
    out.push({
      dir: resolve(root, '..', 'shared', 'models', dirName),
      from: '../shared/models (development)',
    });
  }
  return out;
}

export function locateBackbone(opts: BackboneLookup = {}): BackboneFound | BackboneMissing {
  const candidates = backboneCandidates(opts);
  const lookedIn = candidates.map((c) => c.dir);
  const env = opts.env ?? process.env;
  const { dirName, envVar, marker } = opts.folder ?? MOBILENET_FOLDER;
  // An explicit setting that is wrong must not be papered over by another copy.
  const explicit = env[envVar] ? candidates[0] : null;
  const usable = explicit ? [explicit] : candidates;
  for (const c of usable) {
    if (existsSync(join(c.dir, marker))) return { ok: true, dir: c.dir, from: c.from, lookedIn };
  }
  const where = (explicit ? [explicit] : candidates).map((c) => `  ${c.dir} (${c.from})`).join('\n');
  const message =
    `The pretrained backbone (${dirName}) was not found: no ${marker} in\n${where}\n` +
    (explicit
      ? `${envVar} is set but does not hold the backbone: fix or unset it.`
      : 'Training and scoring need it. Reinstall the app, or in development put the folder in ../shared/models ' +
        'or run `node scripts/copy-backbone.mjs` (SWAN_BACKBONE_SRC=<folder> to copy from elsewhere).');
  return { ok: false, lookedIn: explicit ? [explicit.dir] : lookedIn, message };
}

/**
 * Points the engine at the backbones (sets SWAN_BACKBONE_DIR, and SWAN_RESNET50_DIR when the
 * optional accurate backbone is there, for this process and the workers it starts). Returns
 * MobileNet's lookup, so the caller can warn when the backbone the app needs is missing.
 */
export function useBackbone(opts: BackboneLookup = {}): BackboneFound | BackboneMissing {
  const env = opts.env ?? process.env;
  const resnet = locateBackbone({ ...opts, env, folder: RESNET50_FOLDER });
  if (resnet.ok) env[RESNET50_FOLDER.envVar] = resnet.dir;
  const r = locateBackbone({ ...opts, env, folder: MOBILENET_FOLDER });
  if (r.ok) env[MOBILENET_FOLDER.envVar] = r.dir;
  return r;
}
