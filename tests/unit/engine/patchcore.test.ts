import { describe, expect, it } from 'vitest';
import {
  fitPatchCore,
  greedyCoreset,
  localAverage,
  patchCoreScores,
  patchCoreScoresAsync,
  patchEmbedding,
  resizeMap,
} from '../../../src-main/engine/infer/patchcore';
import type { FeatureMap } from '../../../src-main/engine/types';
import { Rng } from '../../../src-main/engine/util/rng';
import { headMatMul } from '../../../src-main/engine/train/matmul-runtime';

const map = (h: number, w: number, c: number, f: (y: number, x: number, k: number) => number): FeatureMap => {
  const data = new Float32Array(h * w * c);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) data[(y * w + x) * c + k] = f(y, x, k);
  return { h, w, c, data };
};

describe('PatchCore patch features', () => {
  it('averages each cell over its 3x3 neighbours inside the map', () => {
    const m = map(3, 3, 1, (y, x) => y * 3 + x); // 0..8
    const a = localAverage(m);
    expect(a.data[4]).toBeCloseTo(4); // centre: mean of all nine
    expect(a.data[0]).toBeCloseTo((0 + 1 + 3 + 4) / 4); // corner: four cells
    expect(a.data[1]).toBeCloseTo((0 + 1 + 2 + 3 + 4 + 5) / 6); // edge: six cells
  });

  it('upsamples the coarser layer to the finer grid and concatenates the channels', () => {
    const fine = map(4, 4, 2, () => 1);
    const coarse = map(2, 2, 3, (y, x, k) => 10 * k + (y === 0 && x === 0 ? 4 : 0));
    const e = patchEmbedding([fine, coarse]);
    expect([e.h, e.w, e.c]).toEqual([4, 4, 5]);
    expect(Array.from(e.data.subarray(0, 2))).toEqual([1, 1]);
    // Channel k of the coarse part keeps its level 10k, plus a share of the corner's bump.
    const last = e.data.subarray(15 * 5, 16 * 5);
    expect(last[2]).toBeGreaterThanOrEqual(0);
    expect(last[3]).toBeGreaterThanOrEqual(10);
    expect(last[4]).toBeGreaterThanOrEqual(20);
    expect(resizeMap(coarse, 2, 2)).toBe(coarse);
  });
});

describe('greedy coreset', () => {
  it('takes one point of each far-apart cluster before a second of any', () => {
    const rng = new Rng(3);
    const centres = [0, 100, 200, 300];
    const n = 40;
    const dim = 8;
    const pts = new Float32Array(n * dim);
    for (let i = 0; i < n; i++)
      for (let t = 0; t < dim; t++) pts[i * dim + t] = centres[i % 4] + rng.normal();
    const chosen = greedyCoreset(pts, n, dim, 4, 4, new Rng(1));
    expect(new Set(Array.from(chosen, (i) => i % 4)).size).toBe(4);
    expect(greedyCoreset(pts, n, dim, 50, 4, new Rng(1))).toHaveLength(n);
  });

  it('selects what the plain k-center loop selects, for odd and even counts and dimensions', () => {
    // The plain loop: one point at a time, its squared distance summed dimension by dimension.
    const plain = (pts: Float32Array, n: number, dim: number, k: number, first: number) => {
      const minD = new Float32Array(n).fill(Infinity);
      const out: number[] = [];
      let last = first;
      for (let j = 0; j < k; j++) {
        out.push(last);
        let best = -1;
        let arg = 0;
        for (let i = 0; i < n; i++) {
          let s = 0;
          for (let t = 0; t < dim; t++) {
            const d = pts[i * dim + t] - pts[last * dim + t];
            s += d * d;
          }
          const m = s < minD[i] ? (minD[i] = s) : minD[i];
          if (m > best) {
            best = m;
            arg = i;
          }
        }
        last = arg;
      }
      return out;
    };
    for (const [n, dim] of [
      [101, 7],
      [100, 8],
      [57, 1],
      [2, 3],
    ]) {
      const rng = new Rng(n * 13 + dim);
      // Coarse values: equal distances happen, and ties go to the first point as in the loop.
      const pts = Float32Array.from({ length: n * dim }, () => Math.round(rng.normal() * 3) / 2);
      const k = Math.max(1, Math.floor(n / 3));
      // projectionDim >= dim: the points themselves, no projection; the first centre is Rng(5)'s.
      const first = new Rng(5).int(n);
      expect(Array.from(greedyCoreset(pts, n, dim, k, dim, new Rng(5)))).toEqual(
        plain(pts, n, dim, k, first),
      );
    }
  });
});

describe('PatchCore scores', () => {
  const rng = new Rng(7);
  const normals = Array.from({ length: 6 }, () => map(4, 4, 6, () => rng.normal() * 0.1));

  it('scores a training normal 0 with the full bank and an image with one odd patch by that patch', () => {
    const model = fitPatchCore(normals, { coresetRatio: 1, coresetMax: 0 });
    expect(model.count).toBe(6 * 16);
    const odd = map(
      4,
      4,
      6,
      (y, x, k) => normals[2].data[(y * 4 + x) * 6 + k] + (y === 1 && x === 2 ? 3 : 0),
    );
    const s = patchCoreScores(model, [normals[0], odd]);
    expect(s.score[0]).toBeCloseTo(0, 3);
    expect(s.score[1]).toBeGreaterThan(3 * Math.sqrt(6) * 0.8);
    const worst = Array.from(s.maps.subarray(16, 32)).indexOf(s.score[1]);
    expect(worst).toBe(1 * 4 + 2);
    expect(s.maps[16]).toBeCloseTo(0, 3);
  });

  it('keeps the coreset share of the patches and matches brute force on the bank it kept', () => {
    const model = fitPatchCore(normals, { coresetRatio: 0.25, coresetMax: 0, projectionDim: 3 });
    expect(model.count).toBe(24);
    expect(model.dim).toBe(6);
    const q = map(4, 4, 6, () => rng.normal() * 0.2);
    const s = patchCoreScores(model, [q]);
    for (let p = 0; p < 16; p++) {
      let best = Infinity;
      for (let j = 0; j < model.count; j++) {
        let d = 0;
        for (let t = 0; t < 6; t++) d += (q.data[p * 6 + t] - model.bank[j * 6 + t]) ** 2;
        best = Math.min(best, d);
      }
      expect(s.maps[p]).toBeCloseTo(Math.sqrt(best), 4);
    }
    expect(fitPatchCore(normals, { coresetRatio: 0.5, coresetMax: 10 }).count).toBe(10);
  });

  it('refuses maps of different shapes', () => {
    expect(() => fitPatchCore([normals[0], map(2, 2, 6, () => 0)])).toThrow(/differ in shape/);
    const model = fitPatchCore(normals, { coresetRatio: 0.5 });
    expect(() => patchCoreScores(model, [map(4, 4, 5, () => 0)])).toThrow(/query map/);
  });
});

describe('PatchCore bank options (the product head)', () => {
  const rng = new Rng(3);
  const noise = (): FeatureMap => map(4, 4, 16, () => rng.normal());
  const normals = Array.from({ length: 10 }, noise);

  it('projects the patches (embedDim), samples the candidates (candidateMax) and records each patch source', () => {
    const m = fitPatchCore(normals, {
      coresetRatio: 0.5,
      coresetMax: 0,
      embedDim: 8,
      candidateMax: 40,
      seed: 1,
    });
    expect(m.dim).toBe(8);
    expect(m.projection?.length).toBe(16 * 8);
    expect(m.from).toBe(160);
    expect(m.count).toBe(40); // every candidate: half of 160 patches is more than 40
    expect(m.source.length).toBe(m.count);
    expect(new Set(m.source).size).toBeGreaterThan(1);
    expect(Math.max(...m.source)).toBeLessThan(10);
    // A query of the input's dimension is projected like the bank.
    expect(patchCoreScores(m, [noise()]).score[0]).toBeGreaterThan(0);
  });

  it('scores a training image without its own patches when told to (leave-one-out)', () => {
    const m = fitPatchCore(normals, { coresetRatio: 1, coresetMax: 0, seed: 1 });
    const own = patchCoreScores(m, normals.slice(0, 1));
    expect(own.score[0]).toBeLessThan(0.01); // every patch is in the bank
    const loo = patchCoreScores(m, normals.slice(0, 1), [0]);
    expect(loo.score[0]).toBeGreaterThan(1);
    // Leaving out another image changes nothing for this one.
    expect(patchCoreScores(m, normals.slice(0, 1), [5]).score[0]).toBeLessThan(0.01);
  });
});

describe('PatchCore scoring as matrix products (patchCoreScoresAsync)', () => {
  const rng = new Rng(7);
  const noise = (): FeatureMap => map(5, 3, 24, () => rng.normal());
  const normals = Array.from({ length: 12 }, noise);
  const queries = [...Array.from({ length: 9 }, noise), normals[2], normals[4]];
  const exclude = queries.map((_, i) => (i === 9 ? 2 : i === 10 ? 7 : -1));

  for (const runtime of ['tfjs', 'onnxruntime'] as const) {
    it(`gives the loops' distances and leave-one-out on ${runtime}, over several blocks`, async () => {
      const model = fitPatchCore(normals, { coresetRatio: 1, coresetMax: 0, seed: 2 });
      const want = patchCoreScores(model, queries, exclude);
      const mm = await headMatMul(runtime);
      expect(mm.runtime).toBe(runtime);
      // A bank this small fits every query in one block: also a block of one query each.
      for (const got of [
        await patchCoreScoresAsync(model, queries, exclude, mm.matMul),
        await patchCoreScoresAsync(model, queries, exclude, mm.matMul, model.h * model.w * model.count),
      ]) {
        expect([got.h, got.w]).toEqual([5, 3]);
        // Squared distances (|q|^2 ~ 24 here): the square root of a rounding error near 0 is ~1e-3.
        const near = (a: Float32Array, b: Float32Array) => {
          for (let i = 0; i < b.length; i++) expect(Math.abs(a[i] ** 2 - b[i] ** 2)).toBeLessThan(1e-4);
        };
        near(got.maps, want.maps);
        near(got.score, want.score);
      }
      expect(want.score[10]).toBeLessThan(0.01); // its own image is in the bank, another left out
      expect(want.score[9]).toBeGreaterThan(1); // its own image left out
    });
  }
});
