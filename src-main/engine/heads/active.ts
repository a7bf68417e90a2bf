/** Which DRA heads train and score: settings.heads (default all four), without 'seen' when no anomaly is labelled. */
import type { TrainSettings } from '../types';
import type { DraHead } from '../train/losses';

export const ALL_DRA_HEADS: readonly DraHead[] = ['seen', 'pseudo', 'residual', 'normality'];

export function activeHeads(settings: TrainSettings, hasSeen: boolean): DraHead[] {
  const chosen = settings.heads?.length
    ? ALL_DRA_HEADS.filter((h) => settings.heads!.includes(h))
    : [...ALL_DRA_HEADS];
  return chosen.filter((h) => h !== 'seen' || hasSeen);
}
