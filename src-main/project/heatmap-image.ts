/** Heatmap overlays as PNG: a transparent-to-red ramp, so the UI can lay it over the image. */
import sharp from 'sharp';

/** Colour ramp stops (value 0..1 -> RGB): blue, cyan, yellow, red, like common "jet" overlays. */
const STOPS: [number, [number, number, number]][] = [
  [0, [0, 0, 255]],
  [0.35, [0, 255, 255]],
  [0.65, [255, 255, 0]],
  [1, [255, 0, 0]],
];

function ramp(v: number): [number, number, number] {
  for (let k = 1; k < STOPS.length; k++) {
    const [t1, c1] = STOPS[k];
    const [t0, c0] = STOPS[k - 1];
    if (v <= t1) {
      const a = (v - t0) / (t1 - t0);
      return [0, 1, 2].map((i) => Math.round(c0[i] + a * (c1[i] - c0[i]))) as [number, number, number];
    }
  }
  return STOPS[STOPS.length - 1][1];
}

/**
 * Renders patch scores as an RGBA PNG of outWidth x outHeight. Values are scaled by
 * `scale` (a per-model reference, so a good image stays faint); alpha follows the value.
 */
export async function heatmapPng(
  map: { h: number; w: number; data: ArrayLike<number> },
  scale: number,
  outWidth: number,
  outHeight: number,
): Promise<Buffer> {
  const px = Buffer.alloc(map.h * map.w * 4);
  const s = scale > 0 ? scale : 1;
  for (let i = 0; i < map.h * map.w; i++) {
    const v = Math.max(0, Math.min(1, map.data[i] / s));
    const [r, g, b] = ramp(v);
    px[i * 4] = r;
    px[i * 4 + 1] = g;
    px[i * 4 + 2] = b;
    px[i * 4 + 3] = Math.round(255 * Math.min(1, v * 1.2));
  }
  return sharp(px, { raw: { width: map.w, height: map.h, channels: 4 } })
    .resize(Math.max(1, outWidth), Math.max(1, outHeight), { fit: 'fill', kernel: 'cubic' })
    .png()
    .toBuffer();
}
