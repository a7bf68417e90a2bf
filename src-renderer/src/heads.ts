/** Names and colours of the DRA heads (plus any extra head); their order is the engine's. */
import { compareHeads } from '../../src-main/engine/types';

const COLORS: Record<string, string> = {
  seen: '#dc2626',
  pseudo: '#ea580c',
  residual: '#7c3aed',
  normality: '#059669',
  knn: '#0284c7',
  gaussian: '#0d9488',
  patchcore: '#4f46e5',
  global: '#ca8a04',
};

export function headColor(head: string): string {
  return COLORS[head] ?? '#64748b';
}

export function sortHeads(heads: string[]): string[] {
  return [...heads].sort(compareHeads);
}

/** The normality head counts against the anomaly score (total = seen + pseudo + residual − normality). */
export { headSign } from '../../src-main/engine/types';

export function formatEta(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s left`;
  const m = Math.floor(s / 60);
  return `${m}m ${String(s % 60).padStart(2, '0')}s left`;
}

const NAMES: Record<string, string> = {
  seen: 'Seen',
  pseudo: 'Pseudo',
  residual: 'Residual',
  normality: '− Normality',
  knn: 'kNN',
  gaussian: 'Gaussian',
  patchcore: 'PatchCore',
  global: 'Global',
};

/** How a head is named on screen (normality shows its minus sign: it lowers the score). */
export function headLabel(head: string): string {
  return NAMES[head] ?? head;
}
