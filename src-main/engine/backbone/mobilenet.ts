/**
 * MobileNetV1 in TF.js layers format (Google's release: Keras topology + weight shards).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackboneSpec } from '../types';
import { EngineError } from '../types';
import { backboneOfSpec, type Backbone } from './backbone';
import { assertModelDir, readModelArtifacts } from './fs-io';
import { planFused } from './fuse';
import { fusedPlanOnnx } from './fused-onnx';
import { MOBILENET_NORMALIZATION } from './normalize';

interface KerasLayerJson {
  class_name: string;
  config: { batch_input_shape?: (number | null)[]; name?: string };
}

/**
 * The release fixes the input at 224x224; the network is fully convolutional up to the
 * classifier, so the input is opened to any size (448 and the half-size pyramid level).
 */
function openInputSize(topology: unknown): void {
  const t = topology as {
    model_config?: { config?: { layers?: KerasLayerJson[] } };
    config?: { layers?: KerasLayerJson[] };
  };
  const layers = t.model_config?.config?.layers ?? t.config?.layers ?? [];
  for (const l of layers) {
    if (l.class_name === 'InputLayer' && l.config.batch_input_shape) {
      l.config.batch_input_shape = [null, null, null, 3];
    }
  }
}

/** The release's layers model with its input opened to any size (on the current TF.js backend). */
export async function loadMobilenetModel(spec: BackboneSpec): Promise<tf.LayersModel> {
  assertModelDir(spec.modelDir, `Backbone ${spec.id}`);
  const artifacts = await readModelArtifacts(spec.modelDir);
  openInputSize(artifacts.modelTopology);
  try {
    return await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  } catch (err) {
    throw new EngineError(`Cannot build MobileNet from ${spec.modelDir}: ${(err as Error).message}`);
  }
}

/**
 * The ONNX graph of `spec`'s layers (the feature layer and the taps, NHWC) and pooled
 * statistics, from the model's own topology through the fused plan the TF.js path runs.
 */
export async function mobilenetOnnx(spec: BackboneSpec): Promise<Uint8Array> {
  const model = await loadMobilenetModel(spec);
  try {
    const taps = spec.tapLayers ?? [];
    const extra = [...new Set([...taps, ...(spec.pooledLayer ? [spec.pooledLayer] : [])])];
    const plan = planFused(model, spec.featureLayer, extra);
    if (!plan) throw new EngineError(`MobileNet in ${spec.modelDir} holds a layer the ONNX graph cannot express`);
    const layers = [...new Set([spec.featureLayer, ...taps])];
    return fusedPlanOnnx(plan, MOBILENET_NORMALIZATION, layers, spec.id, spec.pooledLayer);
  } finally {
    model.dispose();
  }
}

export async function loadMobilenet(spec: BackboneSpec): Promise<Backbone> {
  const model = await loadMobilenetModel(spec);
  const hasClassifier = model.layers.some((l) => l.name === 'act_softmax');
  return backboneOfSpec(spec, {
    model,
    normalization: MOBILENET_NORMALIZATION,
    classifierOutput: hasClassifier ? model.layers[model.layers.length - 1]!.name : undefined,
  });
}
