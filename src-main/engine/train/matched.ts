/**
 * Matched negatives for the supervised heads. With a handful of labelled anomalies, a head
 * can separate them from the normals by whatever else they share (a cell type, a scanner, a
 * product variant) instead of by the defect, and then fails on defects of another kind.
 * Drawing often the normals that look most like the anomalies (nearest by pooled features)
 * makes that shortcut useless: only the defect itself still separates the two.
 */
import type { ImageFeatures } from '../types';
import { pooledVector } from '../infer/knn';

/**
 * Indices of the union of every anomaly's k nearest normals (cosine on pooled level-0
 * features), k chosen so the union holds about `poolSize` normals: one anomaly brings
 * poolSize neighbours, ten bring one each. A tight pool is the point: a wide one drifts back
 * to the normals in general.
 */
export function matchedNormals(
  normals: readonly ImageFeatures[],
  anomalies: readonly ImageFeatures[],
  poolSize: number,
): number[] {
  if (poolSize <= 0 || anomalies.length === 0 || normals.length === 0) return [];
  const k = Math.max(1, Math.round(poolSize / anomalies.length));
  const bank = normals.map((n) => pooledVector(n.levels[0]));
  const picked = new Set<number>();
  for (const a of anomalies) {
    const q = pooledVector(a.levels[0]);
    const sims = bank.map((v, i) => {
      let s = 0;
      for (let j = 0; j < v.length; j++) s += v[j] * q[j];
      return { i, s };
    });
    sims.sort((x, y) => y.s - x.s || x.i - y.i);
    for (const { i } of sims.slice(0, k)) picked.add(i);
  }
  return [...picked].sort((x, y) => x - y);
}
