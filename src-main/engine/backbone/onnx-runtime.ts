/**
 * The frozen backbone on onnxruntime-node (an optional dependency: its CPU libraries ship in
 * the npm package and run multi-threaded). The ONNX graph is built from the weights once per
 * configuration and kept in the cache folder (ResNet-50: resnet50-onnx.ts; MobileNet: its
 * layers model through fuse.ts and fused-onnx.ts); training of the heads stays on TF.js.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BackboneSpec } from '../types';
import { EngineError } from '../types';
import { splitBatch, splitRows, type FeatureNet } from '../features/feature-net';
import { initBackend } from '../backend';
import { backboneWeightsIdentity, MOBILENET_ID } from './index';
import { mobilenetOnnx } from './mobilenet';
import { loadResnet50Weights, RESNET50_ID } from './resnet50-net';
import { ONNX_PIXELS, ONNX_POOLED, onnxOutputName } from './onnx-graph';
import { resnet50Onnx } from './resnet50-onnx';

type Ort = typeof import('onnxruntime-node');

const MODULE = 'onnxruntime-node';
/** Bumped when the graph builder changes, so a stale cached graph is rebuilt. */
const GRAPH_VERSION = 'onnx-v1';

/** Imports a module by name; injectable so tests can simulate a missing package. */
export type OrtLoader = () => Promise<Ort>;
const defaultLoader: OrtLoader = async () => {
  const m = (await import(MODULE)) as Ort & { default?: Ort };
  return m.InferenceSession ? m : m.default!;
};

/** The backbones this runtime can run (a fine-tuned one stays on TF.js, which trained it). */
export function onnxSupports(spec: BackboneSpec): boolean {
  return (spec.id === RESNET50_ID || spec.id === MOBILENET_ID) && !spec.fineTuned;
}

/** The graph's bytes; MobileNet's is folded by TF.js ops, on the current backend. */
async function buildOnnx(spec: BackboneSpec): Promise<Uint8Array> {
  if (spec.id === MOBILENET_ID) {
    await initBackend();
    return mobilenetOnnx(spec);
  }
  return resnet50Onnx(await loadResnet50Weights(spec.modelDir), outputsOf(spec), spec.pooledLayer);
}

/** onnxruntime-node's version, or null with why it cannot be used. */
export async function onnxruntimeVersion(
  loader: OrtLoader = defaultLoader,
): Promise<{ version: string } | { version: null; why: string }> {
  try {
    const ort = await loader();
    return { version: ort.env.versions?.node ?? ort.env.versions?.common ?? 'unknown' };
  } catch (err) {
    return { version: null, why: `${MODULE} not usable (${(err as Error).message.split('\n')[0]})` };
  }
}

function outputsOf(spec: BackboneSpec): string[] {
  return [...new Set([spec.featureLayer, ...(spec.tapLayers ?? [])])];
}

/**
 * The ONNX file of `spec`'s network in `cacheDir`/onnx, built on first use. The name holds the
 * weights' identity and the outputs, so other weights or layers get a file of their own.
 */
export async function ensureOnnxModel(spec: BackboneSpec, cacheDir: string): Promise<string> {
  if (!onnxSupports(spec)) throw new EngineError(`Backbone ${spec.id} has no ONNX graph here`);
  const weights = await backboneWeightsIdentity(spec);
  const tag = createHash('sha256')
    .update(JSON.stringify([GRAPH_VERSION, weights, outputsOf(spec), spec.pooledLayer ?? null]))
    .digest('hex')
    .slice(0, 16);
  const file = path.join(cacheDir, 'onnx', `${spec.id}-${tag}.onnx`);
  if (existsSync(file)) return file;
  const bytes = await buildOnnx(spec);
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new EngineError(`Cannot write the ONNX graph to ${file}: ${(err as Error).message}`);
  }
  return file;
}

/** The network of `spec` on onnxruntime, from the file ensureOnnxModel wrote. */
export async function loadOnnxFeatureNet(
  spec: BackboneSpec,
  modelPath: string,
  threads: number,
  loader: OrtLoader = defaultLoader,
): Promise<FeatureNet> {
  const ort = await loader();
  let session: import('onnxruntime-node').InferenceSession;
  try {
    session = await ort.InferenceSession.create(modelPath, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
    });
  } catch (err) {
    throw new EngineError(`onnxruntime cannot load ${modelPath}: ${(err as Error).message}`);
  }
  const layers = outputsOf(spec);
  const taps = spec.tapLayers ?? [];
  return {
    inputSize: spec.inputSize,
    pooledLayer: spec.pooledLayer,
    tapLayers: taps,
    async forward(pixels, n, h, w, levelZero) {
      const feeds = { [ONNX_PIXELS]: new ort.Tensor('float32', pixels, [n, h, w, 3]) };
      const fetches = levelZero
        ? [...layers.map(onnxOutputName), ...(spec.pooledLayer ? [ONNX_POOLED] : [])]
        : [onnxOutputName(spec.featureLayer)];
      const out = await session.run(feeds, fetches);
      const mapsOf = (name: string) => {
        const t = out[onnxOutputName(name)]!;
        return splitBatch(t.data as Float32Array, t.dims);
      };
      const maps = mapsOf(spec.featureLayer);
      const result: Awaited<ReturnType<FeatureNet['forward']>> = { maps };
      if (levelZero && taps.length > 0) {
        const perTap = taps.map(mapsOf);
        result.taps = maps.map((_, k) => Object.fromEntries(taps.map((name, j) => [name, perTap[j]![k]!])));
      }
      if (levelZero && spec.pooledLayer) result.pooled = splitRows(out[ONNX_POOLED]!.data as Float32Array, n);
      for (const t of Object.values(out)) t.dispose?.();
      return result;
    },
    dispose: () => void session.release(),
  };
}
