/**
 * MobileNetV1 in TF.js layers format (Google's release: Keras topology + weight shards).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackboneSpec } from '../types';
import { EngineError } from '../types';
import { backboneOfSpec, type Backbone } from './backbone';
import { assertModelDir, readModelArtifacts } from './fs-io';
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

export async function loadMobilenet(spec: BackboneSpec): Promise<Backbone> {
  assertModelDir(spec.modelDir, `Backbone ${spec.id}`);
  const artifacts = await readModelArtifacts(spec.modelDir);
  openInputSize(artifacts.modelTopology);
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  } catch (err) {
    throw new EngineError(`Cannot build MobileNet from ${spec.modelDir}: ${(err as Error).message}`);
  }
  const hasClassifier = model.layers.some((l) => l.name === 'act_softmax');
  return backboneOfSpec(spec, {
    model,
    normalization: MOBILENET_NORMALIZATION,
    classifierOutput: hasClassifier ? model.layers[model.layers.length - 1]!.name : undefined,
  });
}
