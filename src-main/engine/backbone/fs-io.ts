/**
 * TF.js layers-format models on the local file system (model.json + weight shards).
 *
 * tfjs-node's file:// handler is not available (tfjs-node is optional and absent here), and the
 * browser handlers need fetch/IndexedDB, so this small IOHandler reads and writes folders.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { EngineError } from '../types';

export const MODEL_JSON = 'model.json';
const WEIGHTS_FILE = 'weights.bin';

interface ModelJsonFile {
  modelTopology?: object;
  weightsManifest?: tf.io.WeightsManifestConfig;
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  trainingConfig?: tf.io.TrainingConfig;
}

/** Throws an EngineError naming the folder when it holds no model.json. */
export function assertModelDir(dir: string, what: string): void {
  const file = path.join(dir, MODEL_JSON);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new EngineError(`${what}: model folder not found (looked in ${path.resolve(dir)})`);
  }
  if (!existsSync(file)) {
    throw new EngineError(`${what}: no ${MODEL_JSON} in ${path.resolve(dir)}`);
  }
}

/** Reads model.json and every weight shard it lists into one ModelArtifacts. */
export async function readModelArtifacts(dir: string): Promise<tf.io.ModelArtifacts> {
  const jsonPath = path.join(dir, MODEL_JSON);
  let json: ModelJsonFile;
  try {
    json = JSON.parse(await readFile(jsonPath, 'utf8')) as ModelJsonFile;
  } catch (err) {
    throw new EngineError(`Cannot read ${jsonPath}: ${(err as Error).message}`);
  }
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new EngineError(
      `${jsonPath} is not a TF.js layers model (needs modelTopology and weightsManifest)`,
    );
  }
  const specs: tf.io.WeightsManifestEntry[] = [];
  const buffers: ArrayBuffer[] = [];
  for (const group of json.weightsManifest) {
    specs.push(...group.weights);
    for (const shard of group.paths) {
      const shardPath = path.join(dir, shard);
      let bytes: Buffer;
      try {
        bytes = await readFile(shardPath);
      } catch (err) {
        throw new EngineError(`Missing weight file ${shardPath}: ${(err as Error).message}`);
      }
      buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    }
  }
  const weightData = tf.io.concatenateArrayBuffers(buffers);
  const expected = specs.reduce((n, s) => n + weightByteLength(s), 0);
  if (weightData.byteLength !== expected) {
    throw new EngineError(
      `Weight files in ${dir} hold ${weightData.byteLength} bytes but model.json lists ${expected}`,
    );
  }
  return {
    modelTopology: json.modelTopology,
    weightSpecs: specs,
    weightData,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
    trainingConfig: json.trainingConfig,
  };
}

function weightByteLength(spec: tf.io.WeightsManifestEntry): number {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  if (spec.quantization) {
    const bytes = spec.quantization.dtype === 'uint8' ? 1 : 2;
    return n * bytes;
  }
  return n * (spec.dtype === 'float32' || spec.dtype === 'int32' ? 4 : 1);
}

/** An IOHandler that loads a layers model from a folder. */
export function fileSystemLoader(dir: string): tf.io.IOHandler {
  return { load: () => readModelArtifacts(dir) };
}

/**
 * An IOHandler that saves a layers model to a folder (model.json + weights.bin). The folder is
 * written beside the target and renamed into place, so a crash never leaves half a model.
 */
export function fileSystemSaver(dir: string): tf.io.IOHandler {
  return {
    save: async (artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> => {
      const target = path.resolve(dir);
      const tmp = `${target}.tmp-${process.pid}-${Date.now()}`;
      await mkdir(tmp, { recursive: true });
      const weightData = artifacts.weightData
        ? tf.io.concatenateArrayBuffers(
            Array.isArray(artifacts.weightData) ? artifacts.weightData : [artifacts.weightData],
          )
        : new ArrayBuffer(0);
      const json: ModelJsonFile = {
        modelTopology: artifacts.modelTopology as object,
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        trainingConfig: artifacts.trainingConfig,
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
      };
      await writeFile(path.join(tmp, WEIGHTS_FILE), Buffer.from(weightData));
      await writeFile(path.join(tmp, MODEL_JSON), JSON.stringify(json));
      await rm(target, { recursive: true, force: true });
      await mkdir(path.dirname(target), { recursive: true });
      await rename(tmp, target);
      return {
        modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON({
          ...artifacts,
          weightData,
        }),
      };
    },
  };
}

/**
 * A short identity of a model folder's weights (hash of model.json and every shard), used in
 * feature-cache keys so that replacing the weights invalidates cached features.
 */
export async function weightsIdentity(dir: string): Promise<string> {
  const jsonPath = path.join(dir, MODEL_JSON);
  const text = await readFile(jsonPath);
  const hash = createHash('sha256').update(text);
  const json = JSON.parse(text.toString('utf8')) as ModelJsonFile;
  for (const group of json.weightsManifest ?? []) {
    for (const shard of group.paths) hash.update(await readFile(path.join(dir, shard)));
  }
  return hash.digest('hex').slice(0, 16);
}
