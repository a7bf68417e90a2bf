/**
 * The PatchCore head's searched scores, remembered per bank: an image scored with none of the
 * bank's patches excluded gets the same score and map from the same bank every time, and the
 * app scores the same images with the same bank again and again (the queue after the retrain
 * and again after its cross-validation; a retrain that changed only the defects keeps the bank,
 * projectPatchCoreHead). The search is the head's cost, so a re-scoring looks its results up.
 * Banks and images are known by content (SHA-256), since a scorer loads the model anew each time.
 */
import { createHash } from 'node:crypto';
import type { ImageFeatures } from '../types';
import type { PatchCoreModel, PatchCoreScores } from './patchcore';

export interface SearchedScore {
  score: number;
  /** The image's per-patch distances (h x w of its bank). */
  map: Float32Array;
}

/** Banks remembered (the most recently used first out last); a project uses one at a time. */
const BANKS = 2;
/** Images remembered per bank: bounds the memory (each a score and a map of some hundred floats). */
const IMAGES_PER_BANK = 200_000;

const byBank = new Map<string, Map<string, SearchedScore>>();
const keyOfBank = new WeakMap<object, string>();

function bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** A bank's content key: its patches, shape and the layers its patches are made of. */
export function bankKey(model: PatchCoreModel & { taps: readonly string[] }): string {
  let key = keyOfBank.get(model);
  if (key === undefined) {
    const h = createHash('sha256');
    h.update(`${model.dim}|${model.count}|${model.h}x${model.w}|${model.taps.join(',')}|`);
    h.update(bytes(model.bank));
    if (model.projection) h.update(bytes(model.projection));
    key = h.digest('hex');
    keyOfBank.set(model, key);
  }
  return key;
}

/**
 * An image's content key: its level-0 map, which the backbone computes from the image as it does
 * the taps (which taps the bank reads is in its own key); SHA-1, a fraction of a millisecond.
 */
export function imageKey(f: ImageFeatures): string {
  const m = f.levels[0];
  return createHash('sha1').update(`${m.h}x${m.w}x${m.c}|`).update(bytes(m.data)).digest('hex');
}

/** The bank's remembered scores (made the most recently used bank). */
export function searchedScores(bank: string): Map<string, SearchedScore> {
  let m = byBank.get(bank);
  if (m) byBank.delete(bank);
  else m = new Map();
  byBank.set(bank, m);
  while (byBank.size > BANKS) byBank.delete(byBank.keys().next().value!);
  return m;
}

export function remember(scores: Map<string, SearchedScore>, image: string, s: SearchedScore): void {
  if (scores.size >= IMAGES_PER_BANK) scores.delete(scores.keys().next().value!);
  scores.set(image, s);
}

/**
 * The training normals' leave-one-out scores of the fit, by bank and the normals' fingerprints:
 * a scorer that loads the model anew finds them, and does not search its training images again.
 */
const looByBank = new Map<string, PatchCoreScores>();

function looKey(bank: string, fingerprints: Float32Array): string {
  return `${bank}|${createHash('sha1').update(bytes(fingerprints)).digest('hex')}`;
}

export function rememberLeaveOneOut(bank: string, fingerprints: Float32Array, loo: PatchCoreScores): void {
  const key = looKey(bank, fingerprints);
  looByBank.delete(key);
  looByBank.set(key, loo);
  while (looByBank.size > BANKS) looByBank.delete(looByBank.keys().next().value!);
}

export function leaveOneOut(bank: string, fingerprints: Float32Array): PatchCoreScores | undefined {
  return looByBank.get(looKey(bank, fingerprints));
}

/** Forgets every bank (tests, and timing the search itself). */
export function clearSearchedScores(): void {
  byBank.clear();
  looByBank.clear();
}
