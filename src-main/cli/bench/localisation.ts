/**
 * Pixel-level AUROC of heatmaps against ground-truth masks (localisation). A heatmap covers the
 * image squash-resized to the model input, so it is upsampled (bilinear, pixel centres) to the
 * mask's own size; a normal image without a mask counts as all normal pixels. Masks are read
 * here only, after scoring.
 */
import sharp from 'sharp';
import type { DatasetItem } from '../../data/types';

export interface Heatmap {
  h: number;
  w: number;
  data: Float32Array;
}

/** A binary mask, row-major, 1 = defect pixel. */
export interface Mask {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Score levels of the binned AUROC: ties within one level count one half, like exact ties. */
const BINS = 1 << 16;

export class MaskReader {
  private readonly cache = new Map<string, Promise<Mask>>();

  /** The item's mask, or an all-normal one of the image's size for a normal without a mask. */
  read(item: DatasetItem): Promise<Mask> | null {
    if (!item.mask && item.label === 1) return null;
    const key = item.mask ?? item.path;
    let got = this.cache.get(key);
    if (!got) {
      got = item.mask ? readMask(item.mask) : emptyMask(item.path);
      this.cache.set(key, got);
    }
    return got;
  }
}

async function readMask(path: string): Promise<Mask> {
  const { data, info } = await sharp(path).greyscale().raw().toBuffer({ resolveWithObject: true });
  const out = new Uint8Array(info.width * info.height);
  const ch = info.channels;
  for (let i = 0; i < out.length; i++) out[i] = data[i * ch] > 127 ? 1 : 0;
  return { width: info.width, height: info.height, data: out };
}

async function emptyMask(imagePath: string): Promise<Mask> {
  const meta = await sharp(imagePath).metadata();
  const width = meta.autoOrient?.width ?? meta.width ?? 0;
  const height = meta.autoOrient?.height ?? meta.height ?? 0;
  return { width, height, data: new Uint8Array(width * height) };
}

/** Bilinear upsampling of a heatmap to width x height, cell centres at (i + 0.5) * scale. */
export function upsample(map: Heatmap, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height);
  const sy = map.h / height;
  const sx = map.w / width;
  const x0 = new Int32Array(width);
  const x1 = new Int32Array(width);
  const fx = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const u = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), map.w - 1);
    x0[x] = Math.floor(u);
    x1[x] = Math.min(x0[x] + 1, map.w - 1);
    fx[x] = u - x0[x];
  }
  for (let y = 0; y < height; y++) {
    const v = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), map.h - 1);
    const y0 = Math.floor(v);
    const y1 = Math.min(y0 + 1, map.h - 1);
    const fy = v - y0;
    const r0 = y0 * map.w;
    const r1 = y1 * map.w;
    for (let x = 0; x < width; x++) {
      const a = map.data[r0 + x0[x]] * (1 - fx[x]) + map.data[r0 + x1[x]] * fx[x];
      const b = map.data[r1 + x0[x]] * (1 - fx[x]) + map.data[r1 + x1[x]] * fx[x];
      out[y * width + x] = a * (1 - fy) + b * fy;
    }
  }
  return out;
}

/**
 * AUROC over every pixel of every (heatmap, mask) pair, binned at 65,536 score levels between
 * the heatmaps' minimum and maximum (bilinear values stay inside that range). Undefined when
 * the masks hold no defect pixel or no normal pixel.
 */
export function pixelAucRoc(pairs: readonly { map: Heatmap; mask: Mask }[]): number | undefined {
  let lo = Infinity;
  let hi = -Infinity;
  for (const { map } of pairs) {
    for (const v of map.data) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return undefined;
  const pos = new Float64Array(BINS);
  const neg = new Float64Array(BINS);
  const scale = hi > lo ? (BINS - 1) / (hi - lo) : 0;
  for (const { map, mask } of pairs) {
    const up = upsample(map, mask.width, mask.height);
    for (let i = 0; i < up.length; i++) {
      const b = Math.round((up[i] - lo) * scale);
      if (mask.data[i]) pos[b]++;
      else neg[b]++;
    }
  }
  let p = 0;
  let n = 0;
  for (let b = 0; b < BINS; b++) {
    p += pos[b];
    n += neg[b];
  }
  if (p === 0 || n === 0) return undefined;
  // Negatives below each level, walked upward: a positive beats every lower negative.
  let below = 0;
  let area = 0;
  for (let b = 0; b < BINS; b++) {
    area += pos[b] * (below + neg[b] / 2);
    below += neg[b];
  }
  return area / (p * n);
}
