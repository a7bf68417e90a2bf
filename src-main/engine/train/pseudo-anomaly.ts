/**
 * Cut-paste pseudo anomalies (dra.md, "Pseudo anomalies"), as in the reference code's
 * CutPasteNormal: a colour-jittered patch of the image pasted elsewhere in it. The
 * jitter follows torchvision's ColorJitter on PIL images (random order of the four
 * adjustments, PIL's integer arithmetic), so a patch looks like the reference's.
 */
import type { RgbImage } from '../../data/types';
import type { Rng } from '../util/rng';

export const CUTPASTE_AREA: readonly [number, number] = [0.02, 0.15];
export const CUTPASTE_ASPECT = 0.3;
/** ColorJitter(0.1, 0.1, 0.1, 0.1) of the reference. */
export const CUTPASTE_JITTER = 0.1;

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface CutPasteResult {
  image: RgbImage;
  /** Where the patch was pasted. */
  box: Box;
  /** Top-left corner of where it was cut. */
  from: { x: number; y: number };
}

/** PIL's ImageEnhance is Image.blend: truncation toward zero, clipped to 0..255. */
function blend(degenerate: number, value: number, factor: number): number {
  const t = degenerate + factor * (value - degenerate);
  return t <= 0 ? 0 : t >= 255 ? 255 : Math.trunc(t);
}

/** PIL's RGB -> L (ITU-R 601-2 luma, 16-bit fixed point). */
function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

function adjustBrightness(px: Uint8Array, f: number): void {
  for (let i = 0; i < px.length; i++) px[i] = blend(0, px[i], f);
}

function adjustContrast(px: Uint8Array, f: number): void {
  let sum = 0;
  for (let i = 0; i < px.length; i += 3) sum += luma(px[i], px[i + 1], px[i + 2]);
  const mean = Math.trunc(sum / (px.length / 3) + 0.5);
  for (let i = 0; i < px.length; i++) px[i] = blend(mean, px[i], f);
}

function adjustSaturation(px: Uint8Array, f: number): void {
  for (let i = 0; i < px.length; i += 3) {
    const l = luma(px[i], px[i + 1], px[i + 2]);
    px[i] = blend(l, px[i], f);
    px[i + 1] = blend(l, px[i + 1], f);
    px[i + 2] = blend(l, px[i + 2], f);
  }
}

const clip8 = (v: number): number => (v <= 0 ? 0 : v >= 255 ? 255 : v);

/** Hue shift through PIL's 8-bit HSV, as torchvision's adjust_hue does for PIL images. */
function adjustHue(px: Uint8Array, f: number): void {
  const shift = Math.trunc(f * 255);
  for (let i = 0; i < px.length; i += 3) {
    const r = px[i];
    const g = px[i + 1];
    const b = px[i + 2];
    const maxc = Math.max(r, g, b);
    const minc = Math.min(r, g, b);
    if (maxc === minc) continue; // grey: hue has no effect
    const cr = maxc - minc;
    const rc = (maxc - r) / cr;
    const gc = (maxc - g) / cr;
    const bc = (maxc - b) / cr;
    let h = r === maxc ? bc - gc : g === maxc ? 2 + rc - bc : 4 + gc - rc;
    h = (h / 6 + 1) % 1;
    const h8 = (clip8(Math.trunc(h * 255)) + shift + 256) % 256;
    const s8 = clip8(Math.trunc((cr / maxc) * 255));
    const v = maxc;
    if (s8 === 0) {
      px[i] = px[i + 1] = px[i + 2] = v;
      continue;
    }
    const hh = (h8 * 6) / 255;
    const sector = Math.floor(hh);
    const frac = hh - sector;
    const fs = s8 / 255;
    const p = clip8(Math.round(v * (1 - fs)));
    const q = clip8(Math.round(v * (1 - fs * frac)));
    const t = clip8(Math.round(v * (1 - fs * (1 - frac))));
    const rgb = [
      [v, t, p],
      [q, v, p],
      [p, v, t],
      [p, q, v],
      [t, p, v],
      [v, p, q],
    ][sector % 6];
    px[i] = rgb[0];
    px[i + 1] = rgb[1];
    px[i + 2] = rgb[2];
  }
}

/** torchvision ColorJitter(j, j, j, j): the four adjustments in a random order. */
export function colorJitter(px: Uint8Array, rng: Rng, amount: number = CUTPASTE_JITTER): void {
  const order = rng.shuffle([0, 1, 2, 3]);
  const brightness = rng.uniform(1 - amount, 1 + amount);
  const contrast = rng.uniform(1 - amount, 1 + amount);
  const saturation = rng.uniform(1 - amount, 1 + amount);
  const hue = rng.uniform(-amount, amount);
  for (const k of order) {
    if (k === 0) adjustBrightness(px, brightness);
    else if (k === 1) adjustContrast(px, contrast);
    else if (k === 2) adjustSaturation(px, saturation);
    else adjustHue(px, hue);
  }
}

/**
 * Patch size for an area share and aspect ratio (w/h). Rounding can push the area
 * just past the bounds, and an elongated patch of a non-square image can exceed a
 * side; both are nudged back so the patch always fits and its share stays in range.
 */
function patchSize(W: number, H: number, area: number, aspect: number): { w: number; h: number } {
  const total = W * H;
  let w = Math.min(W, Math.max(1, Math.round(Math.sqrt(area * total * aspect))));
  let h = Math.min(H, Math.max(1, Math.round(Math.sqrt((area * total) / aspect))));
  while (w * h > CUTPASTE_AREA[1] * total && (w > 1 || h > 1)) {
    if (w >= h) w--;
    else h--;
  }
  while (w * h < CUTPASTE_AREA[0] * total && (w < W || h < H)) {
    if ((h <= w && h < H) || w >= W) h++;
    else w++;
  }
  return { w, h };
}

export function cutPaste(img: RgbImage, rng: Rng): CutPasteResult {
  const { width: W, height: H, data } = img;
  const area = rng.uniform(CUTPASTE_AREA[0], CUTPASTE_AREA[1]);
  const aspect = Math.exp(rng.uniform(Math.log(CUTPASTE_ASPECT), Math.log(1 / CUTPASTE_ASPECT)));
  const { w, h } = patchSize(W, H, area, aspect);

  const from = { x: rng.int(W - w + 1), y: rng.int(H - h + 1) };
  const patch = new Uint8Array(w * h * 3);
  for (let row = 0; row < h; row++) {
    const s = ((from.y + row) * W + from.x) * 3;
    patch.set(data.subarray(s, s + w * 3), row * w * 3);
  }
  colorJitter(patch, rng);

  const box: Box = { x: rng.int(W - w + 1), y: rng.int(H - h + 1), w, h };
  const out = new Uint8Array(data);
  for (let row = 0; row < h; row++) {
    out.set(patch.subarray(row * w * 3, (row + 1) * w * 3), ((box.y + row) * W + box.x) * 3);
  }
  return { image: { width: W, height: H, data: out }, box, from };
}
