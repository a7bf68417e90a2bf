/**
 * Published AUC-ROC numbers printed beside ours (dra.md): DRA from the paper's Tables 1 and 2
 * (SDD and MVTec bottle from the paper's per-data-set results); AHL (CVPR 2024), the best
 * published since on the same protocol; PatchCore as run in AHL's Table 4 (unsupervised, so
 * the same figure for every shot count).
 */
export interface PublishedRow {
  dra?: number;
  ahl?: number;
  patchcore?: number;
}

type Key = `${string}/${'general' | 'hard'}/${number}`;

const TABLE: Record<Key, PublishedRow> = {
  'headct/general/10': { dra: 0.972, ahl: 0.999, patchcore: 0.864 },
  'headct/general/1': { dra: 0.796, ahl: 0.825, patchcore: 0.864 },
  'elpv/general/10': { dra: 0.845, ahl: 0.85, patchcore: 0.916 },
  'elpv/general/1': { dra: 0.675, ahl: 0.828, patchcore: 0.916 },
  'elpv/hard/10': { dra: 0.766, ahl: 0.788 },
  'elpv/hard/1': { dra: 0.703, ahl: 0.74 },
  // The paper cuts each SDD part into three segments; our copy keeps whole parts (a guide only).
  'kolektorsdd/general/10': { dra: 0.991 },
  'kolektorsdd/general/1': { dra: 0.859 },
  'bottle/general/10': { dra: 1.0 },
  'bottle/general/1': { dra: 1.0 },
};

export function publishedAuc(dataset: string, setting: 'general' | 'hard', shots: number): PublishedRow {
  return TABLE[`${dataset}/${setting}/${shots}`] ?? {};
}
