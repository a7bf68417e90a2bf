/**
 * What a report reads from the project, a page of rows at a time. Pages are fetched with
 * keyset queries that finish before the caller awaits anything: an open better-sqlite3
 * iterator would block every other query of the app on the same connection meanwhile.
 */
import type Database from 'better-sqlite3';
import type { ReportCounts, ScoreScale } from '../api/contract';
import type { Evidence } from '../api/threshold';
import { compareHeads } from '../engine/types';

export const PAGE_SIZE = 500;

export interface ReportRow {
  id: number;
  path: string;
  name: string;
  batch: string;
  status: 'ok' | 'missing';
  sha256: string;
  width: number;
  height: number;
  label: 'good' | 'defect' | null;
  className: string | null;
  total: number | null;
  perHead: Record<string, number> | null;
}

interface RawRow extends Omit<ReportRow, 'perHead'> {
  per_head: string | null;
}

export interface BatchQuery {
  db: Database.Database;
  /** null: every image of the project. */
  batch: string | null;
  /** null: no model, nothing is scored. */
  modelId: number | null;
  threshold: number | null;
  /** Each labelled image's held-out evidence (api/threshold.ts), by image id: what the rates count. */
  evidence?: Map<number, Evidence>;
  /** The model's readable score scale; absent: raw scores. */
  scale?: ScoreScale | null;
}

const SELECT = `SELECT i.id, i.path, i.name, i.batch, i.status, i.sha256, i.width, i.height,
  l.label, c.name AS className, s.total, s.per_head
  FROM images i
  LEFT JOIN labels l ON l.image_id = i.id
  LEFT JOIN classes c ON c.id = l.class_id
  LEFT JOIN scores s ON s.image_id = i.id AND s.model_id = @model`;

const batchClause = (q: BatchQuery) => (q.batch !== null ? 'AND i.batch = @batch' : '');

function params(q: BatchQuery, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: q.modelId ?? -1, batch: q.batch, ...extra };
}

function toRow(r: RawRow): ReportRow {
  const { per_head, ...rest } = r;
  return { ...rest, perHead: per_head ? (JSON.parse(per_head) as Record<string, number>) : null };
}

/** Every image of the batch, in import order, PAGE_SIZE at a time. */
export function* imagePages(q: BatchQuery, pageSize = PAGE_SIZE): Generator<ReportRow[]> {
  const stmt = q.db.prepare(`${SELECT} WHERE i.id > @after ${batchClause(q)} ORDER BY i.id LIMIT @limit`);
  let after = 0;
  for (;;) {
    const rows = (stmt.all(params(q, { after, limit: pageSize })) as RawRow[]).map(toRow);
    if (rows.length === 0) return;
    yield rows;
    after = rows[rows.length - 1].id;
  }
}

/** Ids of the flagged images (score above the threshold), highest score first. */
export function flaggedIds(q: BatchQuery): number[] {
  if (q.modelId === null || q.threshold === null) return [];
  return q.db
    .prepare(
      `SELECT i.id FROM images i JOIN scores s ON s.image_id = i.id AND s.model_id = @model
       WHERE s.total > @threshold ${batchClause(q)} ORDER BY s.total DESC, i.id`,
    )
    .pluck()
    .all(params(q, { threshold: q.threshold })) as number[];
}

export function rowsById(q: BatchQuery, ids: number[]): ReportRow[] {
  if (ids.length === 0) return [];
  const stmt = q.db.prepare(`${SELECT} WHERE i.id = @id`);
  return ids.flatMap((id) => {
    const r = stmt.get(params(q, { id })) as RawRow | undefined;
    return r ? [toRow(r)] : [];
  });
}

export function batchCounts(q: BatchQuery): ReportCounts {
  const c = q.db
    .prepare(
      `SELECT COUNT(*) AS inspected,
              COUNT(s.total) AS scored,
              SUM(s.total > @threshold) AS flagged,
              COUNT(l.label) AS labelled,
              SUM(l.label = 'good') AS good,
              SUM(l.label = 'defect') AS defect,
              SUM(i.status = 'missing') AS missing
       FROM images i
       LEFT JOIN labels l ON l.image_id = i.id
       LEFT JOIN scores s ON s.image_id = i.id AND s.model_id = @model
       WHERE 1 ${batchClause(q)}`,
    )
    .get(params(q, { threshold: q.threshold ?? Number.MAX_VALUE })) as Record<
    keyof ReportCounts,
    number | null
  >;
  return {
    inspected: c.inspected ?? 0,
    scored: c.scored ?? 0,
    flagged: q.threshold === null ? 0 : (c.flagged ?? 0),
    labelled: c.labelled ?? 0,
    good: c.good ?? 0,
    defect: c.defect ?? 0,
    missing: c.missing ?? 0,
  };
}

/** Scores of the batch with labels, for the histogram: numbers only. */
export function batchScores(q: BatchQuery): { total: number; label: 'good' | 'defect' | null }[] {
  if (q.modelId === null) return [];
  return q.db
    .prepare(
      `SELECT s.total, l.label FROM images i JOIN scores s ON s.image_id = i.id AND s.model_id = @model
       LEFT JOIN labels l ON l.image_id = i.id WHERE 1 ${batchClause(q)}`,
    )
    .all(params(q)) as { total: number; label: 'good' | 'defect' | null }[];
}

/** Head names in the engine's display order (HEAD_ORDER), so the report's columns match the app's and the CLI's. */
export function headNames(q: BatchQuery): string[] {
  if (q.modelId === null) return [];
  const seen = new Set<string>();
  const stmt = q.db.prepare('SELECT per_head FROM scores WHERE model_id = ? LIMIT 50');
  for (const raw of stmt.pluck().all(q.modelId) as string[]) {
    for (const k of Object.keys(JSON.parse(raw) as object)) seen.add(k);
  }
  return [...seen].sort(compareHeads);
}

export interface Histogram {
  min: number;
  max: number;
  bins: { from: number; to: number; good: number; defect: number; unlabelled: number }[];
}

export function histogram(
  scores: { total: number; label: 'good' | 'defect' | null }[],
  binCount = 30,
): Histogram | null {
  if (scores.length === 0) return null;
  let min = Infinity;
  let max = -Infinity;
  for (const s of scores) {
    if (s.total < min) min = s.total;
    if (s.total > max) max = s.total;
  }
  const width = max > min ? (max - min) / binCount : 1 / binCount;
  const bins = Array.from({ length: binCount }, (_, k) => ({
    from: min + k * width,
    to: min + (k + 1) * width,
    good: 0,
    defect: 0,
    unlabelled: 0,
  }));
  for (const s of scores) {
    const b = bins[Math.min(binCount - 1, Math.floor((s.total - min) / width))];
    if (s.label === 'good') b.good++;
    else if (s.label === 'defect') b.defect++;
    else b.unlabelled++;
  }
  return { min, max: max > min ? max : min + 1, bins };
}
