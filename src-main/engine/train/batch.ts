/**
 * Turns a BatchPlan into flat HWC feature arrays per pyramid level, applying each sample's
 * patch permutation, and averages the reference set into M_r.
 */
import type { FeatureMap, ImageFeatures } from '../types';
import { EngineError } from '../types';
import type { BatchPlan, SampleRef } from './sampler';
import { cachedPermutation } from './transforms';

export interface FastTrainData {
  normals: ImageFeatures[];
  anomalies: ImageFeatures[];
  /** pseudo[i] = cut-paste variants of normals[i]. */
  pseudo: ImageFeatures[][];
}

export interface AssembledLevel {
  h: number;
  w: number;
  c: number;
  /** [B, h, w, c] */
  x: Float32Array;
  /** [h, w, c] mean of the reference set. */
  ref: Float32Array;
  /** [B, c] global average pool of each sample (a dihedral transform leaves it unchanged). */
  pooled: Float32Array;
}

const poolCache = new WeakMap<Float32Array, Float32Array>();

/** Global average pool of a map, cached per map: fast training draws the same maps again and again. */
export function averagePool(m: FeatureMap): Float32Array {
  let v = poolCache.get(m.data);
  if (!v) {
    v = new Float32Array(m.c);
    const p = m.h * m.w;
    for (let i = 0; i < p; i++) for (let k = 0; k < m.c; k++) v[k] += m.data[i * m.c + k];
    for (let k = 0; k < m.c; k++) v[k] /= p;
    poolCache.set(m.data, v);
  }
  return v;
}

export function featuresOf(data: FastTrainData, s: SampleRef): ImageFeatures {
  if (s.label === 1) return data.anomalies[s.index];
  if (s.label === 2) return data.pseudo[s.index][s.variant];
  return data.normals[s.index];
}

function copyTransformed(src: FeatureMap, t: number, dst: Float32Array, offset: number): void {
  const { h, w, c, data } = src;
  if (t === 0) {
    dst.set(data, offset);
    return;
  }
  const perm = cachedPermutation(t, h, w);
  for (let p = 0; p < h * w; p++) dst.set(data.subarray(perm[p] * c, perm[p] * c + c), offset + p * c);
}

export function assembleLevel(data: FastTrainData, plan: BatchPlan, level: number): AssembledLevel {
  const first = featuresOf(data, plan.items[0]).levels[level];
  const { h, w, c } = first;
  const size = h * w * c;
  const x = new Float32Array(plan.items.length * size);
  const pooled = new Float32Array(plan.items.length * c);
  plan.items.forEach((s, i) => {
    const m = featuresOf(data, s).levels[level];
    if (!m || m.h !== h || m.w !== w || m.c !== c) {
      throw new EngineError(`Feature maps differ in shape at pyramid level ${level}: cannot batch them.`);
    }
    copyTransformed(m, s.transform, x, i * size);
    pooled.set(averagePool(m), i * c);
  });
  const ref = new Float32Array(size);
  const tmp = new Float32Array(size);
  for (const s of plan.references) {
    copyTransformed(featuresOf(data, s).levels[level], s.transform, tmp, 0);
    for (let j = 0; j < size; j++) ref[j] += tmp[j];
  }
  const n = plan.references.length;
  for (let j = 0; j < size; j++) ref[j] /= n;
  return { h, w, c, x, ref, pooled };
}

/** Mean map of a set of images at one level (the fixed M_r). */
export function meanMap(images: readonly ImageFeatures[], level: number): FeatureMap {
  const { h, w, c } = images[0].levels[level];
  const data = new Float32Array(h * w * c);
  for (const im of images) {
    const d = im.levels[level].data;
    for (let j = 0; j < data.length; j++) data[j] += d[j];
  }
  for (let j = 0; j < data.length; j++) data[j] /= images.length;
  return { h, w, c, data };
}
