/**
 * Published AUC-ROC numbers printed beside ours (dra.md: DRA from the paper's Tables 1
 * and 2; AHL, CVPR 2024, the best published since on the same protocol).
 */
export interface PublishedRow {
  dra?: number;
  ahl?: number;
}

type Key = `${string}/${'general' | 'hard'}/${number}`;

const TABLE: Record<Key, PublishedRow> = {
  'headct/general/10': { dra: 0.972, ahl: 0.999 },
  'headct/general/1': { dra: 0.796, ahl: 0.825 },
  'elpv/general/10': { dra: 0.845, ahl: 0.85 },
  'elpv/general/1': { dra: 0.675, ahl: 0.828 },
  'elpv/hard/10': { dra: 0.766, ahl: 0.788 },
  'elpv/hard/1': { dra: 0.703, ahl: 0.74 },
};

export function publishedAuc(dataset: string, setting: 'general' | 'hard', shots: number): PublishedRow {
  return TABLE[`${dataset}/${setting}/${shots}`] ?? {};
}
