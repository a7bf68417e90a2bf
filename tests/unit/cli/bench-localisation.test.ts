import { describe, expect, it } from 'vitest';
import { pixelAucRoc, upsample, type Mask } from '../../../src-main/cli/bench/localisation';
import { aucRoc } from '../../../src-main/engine/metrics';
import { methodLabel, methodSettings } from '../../../src-main/cli/bench/methods';
import { DEFAULT_SETTINGS } from '../../../src-main/engine/settings';
import { Rng } from '../../../src-main/engine/util/rng';

const mask = (width: number, height: number, on: (x: number, y: number) => boolean): Mask => {
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = on(x, y) ? 1 : 0;
  return { width, height, data };
};

describe('pixel AUROC', () => {
  it('upsamples bilinearly with cell centres, constant maps stay constant', () => {
    const up = upsample({ h: 1, w: 2, data: Float32Array.from([0, 1]) }, 4, 1);
    expect(Array.from(up)).toEqual([0, 0.25, 0.75, 1]);
    expect(Array.from(upsample({ h: 2, w: 2, data: new Float32Array(4).fill(3) }, 5, 3))).toEqual(
      new Array(15).fill(3),
    );
  });

  it('is 1 for a map that marks the defect, 0 inverted, 0.5 for a flat map', () => {
    const m = mask(8, 8, (x, y) => x >= 4 && y >= 4);
    const good = { h: 2, w: 2, data: Float32Array.from([0, 0, 0, 1]) };
    const flat = { h: 2, w: 2, data: new Float32Array(4) };
    // Bilinear blur crosses the boundary, so "marks the defect" is high but below 1.
    expect(pixelAucRoc([{ map: good, mask: m }])).toBeGreaterThan(0.95);
    const inv = { h: 2, w: 2, data: Float32Array.from([1, 1, 1, 0]) };
    expect(pixelAucRoc([{ map: inv, mask: m }])).toBeLessThan(0.05);
    expect(pixelAucRoc([{ map: flat, mask: m }])).toBe(0.5);
    expect(pixelAucRoc([{ map: good, mask: mask(8, 8, () => false) }])).toBeUndefined();
  });

  it('matches the exact AUC-ROC over the upsampled pixels', () => {
    const rng = new Rng(5);
    const pairs = Array.from({ length: 3 }, (_, i) => ({
      map: { h: 3, w: 4, data: Float32Array.from({ length: 12 }, () => rng.next()) },
      mask: mask(16 + i, 12, () => rng.next() < 0.2),
    }));
    const scores: number[] = [];
    const labels: number[] = [];
    for (const p of pairs) {
      const up = upsample(p.map, p.mask.width, p.mask.height);
      up.forEach((v, i) => {
        scores.push(v);
        labels.push(p.mask.data[i]);
      });
    }
    expect(pixelAucRoc(pairs)).toBeCloseTo(aucRoc(scores, labels), 4);
  });
});

describe('benchmark methods', () => {
  it("names what ran: swan is the product default, dra the paper's four heads summed and nothing else", () => {
    const { seed: _s, ...swan } = methodSettings('swan', {}, 5);
    const { seed: _d, ...defaults } = DEFAULT_SETTINGS;
    expect(swan).toEqual(defaults);
    const dra = methodSettings('dra', {}, 5);
    expect(dra).toMatchObject({
      seed: 5,
      knnHead: false,
      gaussianHead: false,
      globalHead: false,
      combine: 'sum',
      matchedNormals: 0,
      heads: ['seen', 'pseudo', 'residual', 'normality'],
    });
    expect(methodSettings('devnet').heads).toEqual(['seen']);
    expect(methodLabel('dra')).toBe('dra');
    expect(methodLabel('dra', { steps: 5 })).toBe('dra (steps=5)');
  });
});
