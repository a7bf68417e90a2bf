/**
 * Backbone entry point: which CNN to load, from where.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { BackboneSpec } from '../types';
import type { InputShape } from '../features/geometry';
import { EngineError } from '../types';
import type { Backbone } from './backbone';
import { loadMobilenet } from './mobilenet';
import { loadResnet18, RESNET18_FEATURE_LAYER, RESNET18_ID } from './resnet18';
import { findPackageRoot } from '../util/package-root';
import { assertModelDir, weightsIdentity } from './fs-io';
import { loadResnet50 } from './resnet50';
import {
  assertResnet50Dir,
  RESNET50_DIR_NAME,
  RESNET50_ID,
  RESNET50_LAYERS,
  resnet50WeightsIdentity,
} from './resnet50-net';

export type { Backbone } from './backbone';
export { backboneFromModel } from './backbone';
export { buildResnet18, loadResnet18Weights, RESNET18_ID, RESNET18_FEATURE_LAYER } from './resnet18';
export { fileSystemLoader, fileSystemSaver, readModelArtifacts, weightsIdentity } from './fs-io';
export { RESNET50_ID, RESNET50_DIR_NAME, RESNET50_LAYERS, type Resnet50Layer } from './resnet50-net';

export const MOBILENET_ID = 'mobilenet_v1_0.75';
export const MOBILENET_DIR_NAME = 'mobilenet_v1_0.75_224';

/** The repository (or installed app) root: the folder holding package.json. */
export function repoRoot(from?: string): string {
  const root = findPackageRoot(from);
  if (!root) throw new EngineError(`No package.json above ${from ?? 'the engine'}`);
  return root;
}

/**
 * The bundled MobileNet. Its folder: $SWAN_BACKBONE_DIR, else ../shared/models/<name> beside
 * the repository (where the development machines keep it; the app build copies it into
 * resources/ and sets SWAN_BACKBONE_DIR).
 */
export const MOBILENET_FEATURE_LAYER = 'conv_pw_13_relu';

/**
 * Pooled for the global head with the default feature layer: two blocks earlier, 14x14 at 224,
 * still less ImageNet-specific. Measured (3 seeds, AUC-ROC of the head alone, statistics of
 * conv_pw_11 / of the feature map conv_pw_13): HeadCT general 10-shot 0.965 / 0.923.
 */
export const MOBILENET_POOLED_LAYER = 'conv_pw_11_relu';

export function defaultBackboneSpec(inputSize = 224, featureLayer = MOBILENET_FEATURE_LAYER): BackboneSpec {
  const modelDir =
    process.env.SWAN_BACKBONE_DIR ?? path.resolve(repoRoot(), '..', 'shared', 'models', MOBILENET_DIR_NAME);
  // Another feature layer may come before conv_pw_11: the head then pools the map itself.
  const pooledLayer = featureLayer === MOBILENET_FEATURE_LAYER ? MOBILENET_POOLED_LAYER : undefined;
  return { id: MOBILENET_ID, modelDir, featureLayer, inputSize, ...(pooledLayer ? { pooledLayer } : {}) };
}

/** Loads a backbone on the current TF.js backend (call initBackend first). */
export async function loadBackbone(spec: BackboneSpec): Promise<Backbone> {
  if (!Number.isInteger(spec.inputSize) || spec.inputSize < 32) {
    throw new EngineError(`Backbone input size must be an integer >= 32, got ${spec.inputSize}`);
  }
  if (!existsSync(spec.modelDir)) {
    throw new EngineError(
      `Backbone ${spec.id}: model folder not found (looked in ${path.resolve(spec.modelDir)})`,
    );
  }
  if (spec.id.startsWith('mobilenet')) return loadMobilenet(spec);
  if (spec.id === RESNET50_ID) return loadResnet50(spec);
  if (spec.id === RESNET18_ID) return loadResnet18(spec);
  throw new EngineError(
    `Unknown backbone '${spec.id}' (known: ${MOBILENET_ID}, ${RESNET50_ID}, ${RESNET18_ID})`,
  );
}

/** Throws an EngineError naming the folder when the backbone's weights are not there. */
export function assertBackboneDir(spec: BackboneSpec): void {
  if (spec.id === RESNET50_ID) assertResnet50Dir(spec.modelDir);
  else assertModelDir(spec.modelDir, `Backbone ${spec.id}`);
}

/** A short identity of the backbone's weight files, for feature-cache keys. */
export function backboneWeightsIdentity(spec: BackboneSpec): Promise<string> {
  return spec.id === RESNET50_ID ? resnet50WeightsIdentity(spec.modelDir) : weightsIdentity(spec.modelDir);
}

/** Backbone names a user types (CLI, settings), by engine id. */
export const BACKBONE_NAMES = {
  mobilenet: MOBILENET_ID,
  resnet50: RESNET50_ID,
  resnet18: RESNET18_ID,
} as const;
export type BackboneName = keyof typeof BACKBONE_NAMES;

/** The engine id of a user-facing name ('mobilenet', 'resnet50') or of an id itself. */
export function backboneIdOf(name: string): string {
  const byName = (BACKBONE_NAMES as Record<string, string>)[name];
  if (byName) return byName;
  if ((Object.values(BACKBONE_NAMES) as string[]).includes(name) || name === RESNET18_ID) return name;
  throw new EngineError(`Unknown backbone '${name}' (choose ${Object.keys(BACKBONE_NAMES).join(' or ')})`);
}

/**
 * ResNet-18 up to layer4, the paper's backbone. No weights ship with the app: it is selectable
 * (`--backbone resnet18`) once its ImageNet weights are in a TF.js layers folder named as in
 * resnet18.ts (converted from torchvision): $SWAN_RESNET18_DIR, else ../shared/models/resnet18.
 * Without them, loading says which folder it looked in.
 */
export const RESNET18_DIR_NAME = 'resnet18';

export function resnet18Spec(inputSize = 224, featureLayer: string = RESNET18_FEATURE_LAYER): BackboneSpec {
  const modelDir =
    process.env.SWAN_RESNET18_DIR ?? path.resolve(repoRoot(), '..', 'shared', 'models', RESNET18_DIR_NAME);
  // Pooled for the global head one stage earlier, as for the other backbones.
  const pooledLayer = featureLayer === RESNET18_FEATURE_LAYER ? 'layer3' : undefined;
  return { id: RESNET18_ID, modelDir, featureLayer, inputSize, ...(pooledLayer ? { pooledLayer } : {}) };
}

/**
 * ResNet-50 v2 stages 1-3. Its folder: $SWAN_RESNET50_DIR, else ../shared/models/<name>
 * beside the repository (the app build copies it into resources/ and sets the variable).
 * Feature layer default: stage3_pool2, stage3 averaged over 2x2 cells (7x7x1024 at 224):
 * as accurate as stage3's 14x14 on the development seeds at a fraction of the heads' cost
 * (docs/benchmarks/choices.md). Models trained on 'stage3' record it and are scored on it.
 */
export const RESNET50_FEATURE_LAYER = 'stage3_pool2';
/** Pooled for the global head: one stage earlier, like MobileNet's (not measured on ResNet yet). */
export const RESNET50_POOLED_LAYER = 'stage2_relu';

export function resnet50Spec(
  inputSize = 224,
  featureLayer: string = RESNET50_FEATURE_LAYER,
  tapLayers: string[] = [],
): BackboneSpec {
  for (const l of [featureLayer, ...tapLayers]) {
    if (!(RESNET50_LAYERS as readonly string[]).includes(l)) {
      throw new EngineError(`ResNet-50 v2 has no layer '${l}' (known: ${RESNET50_LAYERS.join(', ')})`);
    }
  }
  const modelDir =
    process.env.SWAN_RESNET50_DIR ?? path.resolve(repoRoot(), '..', 'shared', 'models', RESNET50_DIR_NAME);
  return {
    id: RESNET50_ID,
    modelDir,
    featureLayer,
    inputSize,
    pooledLayer: RESNET50_POOLED_LAYER,
    ...(tapLayers.length > 0 ? { tapLayers } : {}),
  };
}

/** The spec of a backbone by id or name, with that backbone's defaults for what is not given. */
export function backboneSpecFor(
  backbone: string,
  opts: { inputSize?: number; inputShape?: InputShape; featureLayer?: string; tapLayers?: string[] } = {},
): BackboneSpec {
  const spec = baseSpecFor(backboneIdOf(backbone), opts);
  return opts.inputShape ? { ...spec, inputShape: { ...opts.inputShape } } : spec;
}

function baseSpecFor(
  id: string,
  opts: { inputSize?: number; featureLayer?: string; tapLayers?: string[] },
): BackboneSpec {
  if (id === RESNET50_ID) return resnet50Spec(opts.inputSize, opts.featureLayer, opts.tapLayers);
  if (id === RESNET18_ID) {
    const spec = resnet18Spec(opts.inputSize, opts.featureLayer);
    return opts.tapLayers && opts.tapLayers.length > 0 ? { ...spec, tapLayers: opts.tapLayers } : spec;
  }
  if (id !== MOBILENET_ID)
    throw new EngineError(`Backbone '${id}' has no default folder: give a BackboneSpec`);
  const spec = defaultBackboneSpec(opts.inputSize, opts.featureLayer);
  return opts.tapLayers && opts.tapLayers.length > 0 ? { ...spec, tapLayers: opts.tapLayers } : spec;
}
