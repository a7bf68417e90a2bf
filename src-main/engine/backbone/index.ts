/**
 * Backbone entry point: which CNN to load, from where.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { BackboneSpec } from '../types';
import { EngineError } from '../types';
import type { Backbone } from './backbone';
import { loadMobilenet } from './mobilenet';
import { loadResnet18, RESNET18_ID } from './resnet18';
import { findPackageRoot } from '../util/package-root';

export type { Backbone } from './backbone';
export { backboneFromModel } from './backbone';
export { buildResnet18, loadResnet18Weights, RESNET18_ID, RESNET18_FEATURE_LAYER } from './resnet18';
export { fileSystemLoader, fileSystemSaver, readModelArtifacts, weightsIdentity } from './fs-io';

export const MOBILENET_ID = 'mobilenet_v1_0.75';
export const MOBILENET_DIR_NAME = 'mobilenet_v1_0.75_224';

/** The folder holding package.json, found by walking up from this file. */
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
  if (spec.id === RESNET18_ID) return loadResnet18(spec);
  throw new EngineError(`Unknown backbone '${spec.id}' (known: ${MOBILENET_ID}, ${RESNET18_ID})`);
}
