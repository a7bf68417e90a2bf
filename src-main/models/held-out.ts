/**
 * A model version's held-out metrics as the app stores them (ModelInfo.metrics), built from
 * the model manifest's metrics and validation (engine/validate.ts), and read back by the
 * threshold, the PDF and the Models view. Pure data, no Node import: the renderer uses it.
 *
 * Layout of ModelInfo.metrics when the model was cross-validated:
 *   auc_roc, ap, auc_roc_<head>, folds, n_good, n_defect   numbers
 *   method: 'k-fold cross-validation', notes: string[]
 *   out_of_fold: { "<image id>": { label: 'good' | 'defect', total, z?, fold? } }
 *   reference_scores: { ids, folds }   every fold model's scores of unlabelled images
 */
import { compareHeads } from '../engine/types';

export interface OutOfFoldEntry {
  label: 'good' | 'defect';
  total: number;
  /** The total against its fold model's training normals (engine/validate.ts); older models lack it. */
  z?: number;
  /** Which fold held it out (older models lack it). */
  fold?: number;
}

/** Fold f's scores of unlabelled images: folds[f][j] for image ids[j] (engine/validate.ts ReferenceScores). */
export interface ReferenceScores {
  ids: number[];
  folds: number[][];
}

const finiteNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

function entryOf(s: { label?: unknown; total?: unknown; z?: unknown; fold?: unknown } | undefined): OutOfFoldEntry | null {
  if (!(s?.label === 'good' || s?.label === 'defect') || !finiteNum(s.total)) return null;
  return {
    label: s.label,
    total: s.total,
    ...(finiteNum(s.z) ? { z: s.z } : {}),
    ...(Number.isInteger(s.fold) && (s.fold as number) >= 0 ? { fold: s.fold as number } : {}),
  };
}

/** Reference scores from a manifest's validation or ModelInfo.metrics; null when absent or malformed. */
export function referenceScores(v: unknown): ReferenceScores | null {
  const r = v as { ids?: unknown; folds?: unknown } | null | undefined;
  if (!r || !Array.isArray(r.ids) || !Array.isArray(r.folds)) return null;
  const ids = r.ids.map(Number);
  if (!ids.every(Number.isInteger)) return null;
  const folds = r.folds.map((f) =>
    Array.isArray(f) && f.length === ids.length && f.every(finiteNum) ? (f as number[]) : [],
  );
  return { ids, folds };
}

/** ModelInfo.metrics from a manifest (null when it has no metrics). */
export function appMetrics(manifest: unknown): Record<string, unknown> | null {
  const m = manifest as
    | {
        metrics?: Record<string, unknown>;
        validation?: {
          method?: unknown;
          notes?: unknown;
          outOfFold?: Record<string, { label?: unknown; total?: unknown; z?: unknown; fold?: unknown }>;
          reference?: unknown;
        };
      }
    | null
    | undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m?.metrics ?? {}))
    if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  const v = m?.validation;
  if (v && typeof v === 'object') {
    if (typeof v.method === 'string') out.method = v.method;
    if (Array.isArray(v.notes) && v.notes.length) out.notes = v.notes.filter((n) => typeof n === 'string');
    const oof: Record<string, OutOfFoldEntry> = {};
    for (const [id, s] of Object.entries(v.outOfFold ?? {})) {
      const e = entryOf(s);
      if (e) oof[id] = e;
    }
    out.out_of_fold = oof;
    const ref = referenceScores(v.reference);
    if (ref) out.reference_scores = ref;
    const pooled = pooledAuc(oof);
    if (pooled) {
      out.auc_roc = pooled.auc;
      out.auc_ci_low = pooled.low;
      out.auc_ci_high = pooled.high;
    }
  }
  return Object.keys(out).length ? out : null;
}

/** Out-of-fold scores by image id (empty when the model was not cross-validated). */
export function outOfFoldScores(
  metrics: Record<string, unknown> | null | undefined,
): Map<number, OutOfFoldEntry> {
  const out = new Map<number, OutOfFoldEntry>();
  const oof = metrics?.out_of_fold;
  if (!oof || typeof oof !== 'object') return out;
  for (const [id, s] of Object.entries(oof as Record<string, Partial<OutOfFoldEntry>>)) {
    const n = Number(id);
    const e = entryOf(s);
    if (Number.isInteger(n) && e) out.set(n, e);
  }
  return out;
}

/** The metrics without the per-image scores: what an exported model tells another project. */
export function withoutImageScores(metrics: Record<string, unknown> | null): Record<string, unknown> | null {
  if (!metrics) return null;
  const rest = { ...metrics };
  delete rest.out_of_fold;
  delete rest.reference_scores;
  return rest;
}

/**
 * AUC-ROC of the out-of-fold scores pooled over the folds on z (each fold model's own scale
 * taken out), with a 95 % interval (Hanley & McNeil 1982). Null when the entries have no z
 * (an older model) or lack one of the two kinds.
 */
export function pooledAuc(
  oof: Record<string, OutOfFoldEntry>,
): { auc: number; low: number; high: number; good: number; defect: number } | null {
  const e = Object.values(oof);
  if (e.length === 0 || e.some((x) => x.z === undefined)) return null;
  const pos = e.filter((x) => x.label === 'defect').map((x) => x.z!);
  const neg = e.filter((x) => x.label === 'good').map((x) => x.z!);
  if (pos.length === 0 || neg.length === 0) return null;
  let wins = 0;
  for (const p of pos) for (const n of neg) wins += p > n ? 1 : p === n ? 0.5 : 0;
  const a = wins / (pos.length * neg.length);
  const q1 = a / (2 - a);
  const q2 = (2 * a * a) / (1 + a);
  const v =
    (a * (1 - a) + (pos.length - 1) * (q1 - a * a) + (neg.length - 1) * (q2 - a * a)) /
    (pos.length * neg.length);
  const h = 1.96 * Math.sqrt(Math.max(0, v));
  return { auc: a, low: Math.max(0, a - h), high: Math.min(1, a + h), good: neg.length, defect: pos.length };
}

const num = (m: Record<string, unknown>, k: string): number | null =>
  typeof m[k] === 'number' && Number.isFinite(m[k]) ? (m[k] as number) : null;

const f3 = (x: number | null): string => (x === null ? '-' : x.toFixed(3));

export interface HeldOutSummary {
  /** e.g. "AUC-ROC 0.912, AP 0.850" or null when not measured. */
  headline: string | null;
  /** e.g. "3-fold cross-validation on 75 good / 10 defect labelled images". */
  how: string;
  /** e.g. "seen 0.900, pseudo 0.800, ..." (empty when none). */
  perHead: string;
  notes: string[];
}

/** People's words for a model's held-out metrics; null when the model has none recorded. */
export function heldOutSummary(metrics: Record<string, unknown> | null | undefined): HeldOutSummary | null {
  if (!metrics) return null;
  const folds = num(metrics, 'folds');
  const method = typeof metrics.method === 'string' ? metrics.method : null;
  const auc = num(metrics, 'auc_roc');
  const ap = num(metrics, 'ap');
  if (folds === null && auc === null) return null;
  // The AUC's own counts when the app measured it on the rates' evidence (api/threshold.ts withEvidenceAuc).
  const good = num(metrics, 'auc_good') ?? num(metrics, 'n_good');
  const defect = num(metrics, 'auc_defect') ?? num(metrics, 'n_defect');
  const how =
    folds && folds > 0
      ? `${folds}-fold ${method === 'k-fold cross-validation' || !method ? 'cross-validation' : method} on ${good ?? '?'} good / ${defect ?? '?'} defect labelled images`
      : `cross-validation could not run on ${good ?? '?'} good / ${defect ?? '?'} defect labelled images`;
  const onScale = num(metrics, 'auc_good') !== null ? ", each on the model's own scale" : '';
  const heads = Object.keys(metrics)
    .filter((k) => k.startsWith('auc_roc_') && num(metrics, k) !== null)
    .map((k) => k.slice('auc_roc_'.length))
    .sort(compareHeads);
  const notes = Array.isArray(metrics.notes)
    ? metrics.notes.filter((n): n is string => typeof n === 'string')
    : [];
  const low = num(metrics, 'auc_ci_low');
  const high = num(metrics, 'auc_ci_high');
  const interval = low !== null && high !== null ? ` (95 % interval ${f3(low)}-${f3(high)})` : '';
  // Too few of a kind for the interval to mean anything: say so rather than print a number.
  if (auc !== null && ((good ?? 0) < 5 || (defect ?? 0) < 3))
    notes.push(
      `AUC-ROC not estimable: ${good ?? 0} good and ${defect ?? 0} defect labelled images are too few (at least 5 and 3)`,
    );
  const estimable = auc !== null && (good ?? 0) >= 5 && (defect ?? 0) >= 3;
  return {
    headline: estimable ? `AUC-ROC ${f3(auc)}${interval}, AP ${f3(ap)}` : null,
    how: how + onScale,
    perHead: heads.map((h) => `${h} ${f3(num(metrics, `auc_roc_${h}`))}`).join(', '),
    notes,
  };
}

/** One line: "AUC-ROC 0.912, AP 0.850 (3-fold cross-validation on 75 good / 10 defect labelled images)". */
export function heldOutLine(metrics: Record<string, unknown> | null | undefined): string | null {
  const s = heldOutSummary(metrics);
  if (!s) return null;
  if (s.headline) return `${s.headline} (${s.how})`;
  const why = s.notes.find((n) => /not computed|needs at least|not estimable/.test(n));
  return `not measured (${s.how})${why ? `: ${why}` : ''}`;
}
