import { describe, expect, it } from 'vitest';
import type { RgbImage } from '../../../src-main/data/types';
import { colorJitter, cutPaste } from '../../../src-main/engine/train/pseudo-anomaly';
import { Rng } from '../../../src-main/engine/util/rng';

function noiseImage(width: number, height: number, seed: number): RgbImage {
  const rng = new Rng(seed);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = rng.int(256);
  return { width, height, data };
}

function inside(x: number, y: number, b: { x: number; y: number; w: number; h: number }): boolean {
  return x >= b.x && x < b.x + b.w && y >= b.y && y < b.y + b.h;
}

describe('cutPaste', () => {
  const sizes: [number, number][] = [
    [64, 64],
    [96, 40],
    [30, 70],
  ];
  for (const [W, H] of sizes) {
    it(`keeps the geometry of dra.md on ${W}x${H} over many seeds`, () => {
      const img = noiseImage(W, H, 1);
      const original = img.data.slice();
      for (let seed = 0; seed < 200; seed++) {
        const { image, box, from } = cutPaste(img, new Rng(seed));
        const share = (box.w * box.h) / (W * H);
        expect(share).toBeGreaterThanOrEqual(0.02);
        expect(share).toBeLessThanOrEqual(0.15);
        expect(box.x).toBeGreaterThanOrEqual(0);
        expect(box.y).toBeGreaterThanOrEqual(0);
        expect(box.x + box.w).toBeLessThanOrEqual(W);
        expect(box.y + box.h).toBeLessThanOrEqual(H);
        expect(from.x + box.w).toBeLessThanOrEqual(W);
        expect(from.y + box.h).toBeLessThanOrEqual(H);
        expect(image.width).toBe(W);
        expect(image.height).toBe(H);

        let changedInside = 0;
        let changedOutside = 0;
        for (let y = 0; y < H; y++) {
          for (let x = 0; x < W; x++) {
            const o = (y * W + x) * 3;
            const same =
              image.data[o] === original[o] &&
              image.data[o + 1] === original[o + 1] &&
              image.data[o + 2] === original[o + 2];
            if (same) continue;
            if (inside(x, y, box)) changedInside++;
            else changedOutside++;
          }
        }
        expect(changedOutside).toBe(0);
        // Noise pasted from elsewhere (or jittered onto itself) changes most of the box.
        expect(changedInside).toBeGreaterThan(0.5 * box.w * box.h);
      }
      // The input image is left untouched.
      expect(img.data).toEqual(original);
    });
  }

  it('gives the same output for the same seed and different ones for different seeds', () => {
    const img = noiseImage(48, 48, 3);
    const a = cutPaste(img, new Rng(42));
    const b = cutPaste(img, new Rng(42));
    const c = cutPaste(img, new Rng(43));
    expect(b.box).toEqual(a.box);
    expect(b.from).toEqual(a.from);
    expect(Buffer.from(b.image.data).equals(Buffer.from(a.image.data))).toBe(true);
    expect(Buffer.from(c.image.data).equals(Buffer.from(a.image.data))).toBe(false);
  });

  it('draws aspect ratios on both sides of square', () => {
    const img = noiseImage(100, 100, 5);
    let wide = 0;
    let tall = 0;
    for (let seed = 0; seed < 100; seed++) {
      const { box } = cutPaste(img, new Rng(seed));
      if (box.w > box.h) wide++;
      if (box.h > box.w) tall++;
      expect(box.w / box.h).toBeLessThanOrEqual(1 / 0.3 + 0.2);
      expect(box.w / box.h).toBeGreaterThanOrEqual(0.3 - 0.05);
    }
    expect(wide).toBeGreaterThan(20);
    expect(tall).toBeGreaterThan(20);
  });
});

function hueOf(r: number, g: number, b: number): number {
  const max = Math.max(r, g, b);
  const c = max - Math.min(r, g, b);
  if (c === 0) return 0;
  const h = max === r ? ((g - b) / c + 6) % 6 : max === g ? (b - r) / c + 2 : (r - g) / c + 4;
  return h / 6;
}

describe('colorJitter', () => {
  it('keeps grey grey and scales it by at most the brightness x contrast range', () => {
    for (let seed = 0; seed < 50; seed++) {
      const px = new Uint8Array([120, 120, 120, 200, 200, 200]);
      colorJitter(px, new Rng(seed));
      expect(px[0]).toBe(px[1]);
      expect(px[1]).toBe(px[2]);
      // Contrast blends towards the patch mean (160): 120 and 200 stay on their sides.
      expect(px[0]).toBeGreaterThanOrEqual(Math.floor(0.9 * 0.9 * 120) - 2);
      expect(px[3]).toBeLessThanOrEqual(Math.ceil(1.1 * 1.1 * 200) + 2);
      expect(px[0]).toBeLessThan(px[3]);
    }
  });

  it('shifts hue by at most a tenth of the circle, both ways', () => {
    let up = 0;
    let down = 0;
    for (let seed = 0; seed < 100; seed++) {
      const px = new Uint8Array([230, 40, 40]);
      colorJitter(px, new Rng(seed));
      let d = hueOf(px[0], px[1], px[2]) - hueOf(230, 40, 40);
      if (d > 0.5) d -= 1;
      if (d < -0.5) d += 1;
      // PIL quantises hue to 1/255 of the circle, hence the slack.
      expect(Math.abs(d)).toBeLessThanOrEqual(0.1 + 3 / 255);
      if (d > 0.02) up++;
      if (d < -0.02) down++;
    }
    expect(up).toBeGreaterThan(10);
    expect(down).toBeGreaterThan(10);
  });

  it('is the identity when the jitter amount is zero, up to HSV rounding', () => {
    const px = new Uint8Array([200, 100, 50, 10, 220, 90]);
    const before = px.slice();
    colorJitter(px, new Rng(1), 0);
    for (let i = 0; i < px.length; i++) expect(Math.abs(px[i] - before[i])).toBeLessThanOrEqual(3);
  });
});
