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
/** A backbone folder is usable when it has its topology file. */
const MARKER = 'model.json';

export interface BackboneLookup {
  /** Electron's process.resourcesPath, when running in Electron (packaged or not). */
  resourcesPath?: string;
  /** The folder holding package.json; found from this file when absent. */
  appRoot?: string;
  env?: NodeJS.ProcessEnv;
}

export type BackboneFound = { ok: true; dir: string; from: string; lookedIn: string[] };
export type BackboneMissing = { ok: false; lookedIn: string[]; message: string };

/** Every place the backbone may be, in order, with what each place is. */
export function backboneCandidates(opts: BackboneLookup = {}): { dir: string; from: string }[] {
  const env = opts.env ?? process.env;
  const out: { dir: string; from: string }[] = [];
  if (env.SWAN_BACKBONE_DIR) out.push({ dir: resolve(env.SWAN_BACKBONE_DIR), from: 'SWAN_BACKBONE_DIR' });
  if (opts.resourcesPath) {
    out.push({ dir: join(opts.resourcesPath, RESOURCES_MODELS, BACKBONE_DIR_NAME), from: 'app resources' });
  }
  const root = opts.appRoot ?? findPackageRoot() ?? null;
  if (root) {
    // Development: copied by scripts/copy-backbone.mjs, or the shared folder beside the repository.
    out.push({
      dir: join(root, 'resources', RESOURCES_MODELS, BACKBONE_DIR_NAME),
      from: 'resources/ (development)',
    });
    out.push({
      dir: resolve(root, '..', 'shared', 'models', BACKBONE_DIR_NAME),
      from: '../shared/models (development)',
    });
  }
  return out;
}

export function locateBackbone(opts: BackboneLookup = {}): BackboneFound | BackboneMissing {
  const candidates = backboneCandidates(opts);
  const lookedIn = candidates.map((c) => c.dir);
  const env = opts.env ?? process.env;
  // An explicit setting that is wrong must not be papered over by another copy.
  const explicit = env.SWAN_BACKBONE_DIR ? candidates[0] : null;
  const usable = explicit ? [explicit] : candidates;
  for (const c of usable) {
    if (existsSync(join(c.dir, MARKER))) return { ok: true, dir: c.dir, from: c.from, lookedIn };
  }
  const where = (explicit ? [explicit] : candidates).map((c) => `  ${c.dir} (${c.from})`).join('\n');
  const message =
    `The pretrained backbone (${BACKBONE_DIR_NAME}) was not found: no ${MARKER} in\n${where}\n` +
    (explicit
      ? 'SWAN_BACKBONE_DIR is set but does not hold the backbone: fix or unset it.'
      : 'Training and scoring need it. Reinstall the app, or in development put the folder in ../shared/models ' +
        'or run `node scripts/copy-backbone.mjs` (SWAN_BACKBONE_SRC=<folder> to copy from elsewhere).');
  return { ok: false, lookedIn: explicit ? [explicit.dir] : lookedIn, message };
}

/**
 * Points the engine at the backbone (sets SWAN_BACKBONE_DIR for this process and the
 * workers it starts). Returns the lookup, so the caller can warn when it is missing.
 */
export function useBackbone(opts: BackboneLookup = {}): BackboneFound | BackboneMissing {
  const env = opts.env ?? process.env;
  const r = locateBackbone({ ...opts, env });
  if (r.ok) env.SWAN_BACKBONE_DIR = r.dir;
  return r;
}
