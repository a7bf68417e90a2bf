/**
 * What each fast-training step looks at (dra.md, "Sampling and training"): batchNormals
 * normals, each replaced by one of its pseudo-anomaly variants with probability 0.5, plus
 * batchAnomalies seen anomalies drawn with repetition; and a fresh reference set of N_r
 * normals, each a pseudo anomaly with probability 0.5. Indices only: batch.ts turns a plan
 * into feature tensors.
 */
import type { Rng } from '../util/rng';
import type { SampleLabel } from './losses';

export interface SampleRef {
  /** Index into the normals or the anomalies. */
  index: number;
  /** 0 normal, 1 seen anomaly, 2 pseudo variant `variant` of normal `index`. */
  label: SampleLabel;
  variant: number;
  /** Dihedral transform applied to the feature maps (0 = identity), see transforms.ts. */
  transform: number;
}

export interface BatchPlan {
  items: SampleRef[];
  references: SampleRef[];
}

export interface SamplerConfig {
  normals: number;
  anomalies: number;
  /** Pseudo variants available per normal. */
  pseudoCounts: readonly number[];
  batchNormals: number;
  batchAnomalies: number;
  referenceCount: number;
  pseudoProbability: number;
  /** How many dihedral transforms to draw from (1 = no augmentation, 4 or 8). */
  transforms: number;
  /**
   * Normals that look most like the labelled anomalies (see train/matched.ts); this many of
   * the batch's normal slots are drawn from them, the rest from all normals.
   */
  matched?: { indices: readonly number[]; perBatch: number };
}

/** k indices of [0, n): distinct while n allows, otherwise every index then random repeats. */
export function drawIndices(rng: Rng, n: number, k: number): number[] {
  if (n === 0) return [];
  const all = Array.from({ length: n }, (_, i) => i);
  if (k <= n) return rng.sample(all, k);
  const out = rng.shuffle(all);
  while (out.length < k) out.push(rng.int(n));
  return out;
}

function normalOrPseudo(rng: Rng, cfg: SamplerConfig, index: number): SampleRef {
  const variants = cfg.pseudoCounts[index] ?? 0;
  const transform = cfg.transforms > 1 ? rng.int(cfg.transforms) : 0;
  if (variants > 0 && rng.next() < cfg.pseudoProbability) {
    return { index, label: 2, variant: rng.int(variants), transform };
  }
  return { index, label: 0, variant: -1, transform };
}

export function planBatch(rng: Rng, cfg: SamplerConfig): BatchPlan {
  const items: SampleRef[] = [];
  const m = cfg.matched && cfg.matched.indices.length > 0 ? cfg.matched : null;
  const fromMatched = m ? Math.min(m.perBatch, cfg.batchNormals) : 0;
  const normals = drawIndices(rng, cfg.normals, cfg.batchNormals - fromMatched);
  if (m) for (const j of drawIndices(rng, m.indices.length, fromMatched)) normals.push(m.indices[j]);
  for (const i of normals) items.push(normalOrPseudo(rng, cfg, i));
  if (cfg.anomalies > 0) {
    // With repetition: a 1-shot run sees its single anomaly batchAnomalies times per step.
    for (let j = 0; j < cfg.batchAnomalies; j++) {
      const index = rng.int(cfg.anomalies);
      items.push({
        index,
        label: 1,
        variant: -1,
        transform: cfg.transforms > 1 ? rng.int(cfg.transforms) : 0,
      });
    }
  }
  const references = drawIndices(rng, cfg.normals, cfg.referenceCount).map((i) =>
    normalOrPseudo(rng, cfg, i),
  );
  return { items, references };
}
