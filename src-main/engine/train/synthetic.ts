/**
 * Synthetic feature maps with known anomalies, for tests and benchmarks: normal maps are
 * noise; a defect is a bright square patch on a band of channels, one band per defect kind,
 * so that "seen", "pseudo" and "unseen" defects can be told apart.
 */
import type { FeatureMap, ImageFeatures } from '../types';
import type { Rng } from '../util/rng';

export interface SyntheticSpec {
  /** Level-0 side; level 1 is ceil(side / 2). */
  side: number;
  channels: number;
  levels?: number;
  noise?: number;
}

/** Which channel band a defect lights up. */
export type DefectBand = { from: number; to: number };

function noiseMap(rng: Rng, h: number, w: number, c: number, noise: number): FeatureMap {
  const data = new Float32Array(h * w * c);
  for (let i = 0; i < data.length; i++) data[i] = noise * rng.next();
  return { h, w, c, data };
}

export function normalFeatures(rng: Rng, spec: SyntheticSpec): ImageFeatures {
  const levels: FeatureMap[] = [];
  let side = spec.side;
  for (let l = 0; l < (spec.levels ?? 2); l++) {
    levels.push(noiseMap(rng, side, side, spec.channels, spec.noise ?? 1));
    side = Math.ceil(side / 2);
  }
  return { levels };
}

/** A copy of `base` with a bright 2x2 patch (1x1 at coarser levels) on the band, at a random place. */
export function withDefect(rng: Rng, base: ImageFeatures, band: DefectBand, strength = 3): ImageFeatures {
  const l0 = base.levels[0];
  const py = rng.int(l0.h - 1);
  const px = rng.int(l0.w - 1);
  return {
    levels: base.levels.map((m, l) => {
      const data = Float32Array.from(m.data);
      const scale = 2 ** l;
      const size = l === 0 ? 2 : 1;
      const y0 = Math.floor(py / scale);
      const x0 = Math.floor(px / scale);
      for (let y = y0; y < Math.min(m.h, y0 + size); y++)
        for (let x = x0; x < Math.min(m.w, x0 + size); x++)
          for (let k = band.from; k < band.to; k++) data[(y * m.w + x) * m.c + k] += strength;
      return { ...m, data };
    }),
  };
}
