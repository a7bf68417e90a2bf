/**
 * Threshold from a target, and what a threshold does on the labelled images. An image is
 * flagged when its score is strictly above the threshold (as everywhere in the store), so
 * every threshold chosen here is an actual score: the image holding it passes.
 */
import type Database from 'better-sqlite3';
import type { ThresholdRates, ThresholdSource } from './contract';
import { AppError } from './errors';
import { outOfFoldScores } from '../models/held-out';

export interface LabelledScore {
  imageId: number;
  total: number;
  label: 'good' | 'defect';
  perHead: string;
}

/** Scored, labelled images of one model (one batch, or all). */
export function labelledScores(
  db: Database.Database,
  modelId: number,
  batch?: string | null,
): LabelledScore[] {
  const where = batch ? 'AND i.batch = @batch' : '';
  return db
    .prepare(
      `SELECT i.id AS imageId, s.total, l.label, s.per_head AS perHead
       FROM images i JOIN labels l ON l.image_id = i.id
       JOIN scores s ON s.image_id = i.id AND s.model_id = @model
       WHERE 1 ${where} ORDER BY i.id`,
    )
    .all({ model: modelId, batch: batch ?? null }) as LabelledScore[];
}

/** Image ids a model was trained on: they are not held out. */
export function trainedIds(db: Database.Database, modelId: number): Set<number> {
  const r = db.prepare('SELECT label_ids FROM models WHERE id = ?').get(modelId) as
    { label_ids: string } | undefined;
  if (!r) return new Set();
  try {
    const ids = JSON.parse(r.label_ids) as unknown;
    return new Set(Array.isArray(ids) ? ids.map(Number) : []);
  } catch {
    return new Set();
  }
}

/**
 * Out-of-fold scores of a model's training images, by image id (empty when the model was
 * not cross-validated at training): each is the score of a fold model that did not train
 * on the image, so it is a held-out score.
 */
export function outOfFold(db: Database.Database, modelId: number): Map<number, number> {
  const r = db.prepare('SELECT metrics FROM models WHERE id = ?').get(modelId) as
    { metrics: string | null } | undefined;
  if (!r?.metrics) return new Map();
  try {
    const m = JSON.parse(r.metrics) as Record<string, unknown>;
    return new Map([...outOfFoldScores(m)].map(([id, s]) => [id, s.total]));
  } catch {
    return new Map();
  }
}

/**
 * Good images to measure false alarms on, by held-out scores only when there are any: the
 * good images the model did not train on (its own scores) and, when the model was
 * cross-validated, the training good images by their out-of-fold scores. Without either,
 * every good image by the model's own scores (the training ones in-sample: optimistic).
 */
function goodPool(
  rows: LabelledScore[],
  trained: Set<number>,
  oof: Map<number, number>,
): { scores: number[]; basis: ThresholdRates['goodBasis'] } {
  const good = rows.filter((r) => r.label === 'good');
  const held = good.filter((r) => !trained.has(r.imageId)).map((r) => r.total);
  const folded = good.flatMap((r) =>
    trained.has(r.imageId) && oof.has(r.imageId) ? [oof.get(r.imageId)!] : [],
  );
  if (folded.length > 0) return { scores: [...held, ...folded], basis: 'out-of-fold' };
  if (held.length > 0) return { scores: held, basis: 'held-out' };
  return { scores: good.map((r) => r.total), basis: 'all' };
}

/**
 * The smallest good score with at most floor(rate * n) good scores strictly above it
 * (also the automatic first threshold, at rate 0.02).
 */
export function thresholdForFalseAlarms(goodScores: number[], rate: number): number | null {
  if (goodScores.length === 0) return null;
  const pool = [...goodScores].sort((a, b) => a - b);
  const k = Math.max(0, Math.min(pool.length - 1, Math.ceil((1 - rate) * pool.length - 1e-9) - 1));
  return pool[k];
}

/**
 * The highest threshold that still has at least ceil(rate * n) defect scores strictly
 * above it: the next score below the k-th highest defect score, among all scores of the
 * model (`allScores`), so no image between the two changes side.
 */
export function thresholdForCatch(defectScores: number[], rate: number, allScores: number[]): number | null {
  if (defectScores.length === 0) return null;
  const d = [...defectScores].sort((a, b) => b - a);
  const k = Math.max(1, Math.min(d.length, Math.ceil(rate * d.length - 1e-9)));
  const target = d[k - 1];
  let below = -Infinity;
  for (const s of allScores) if (s < target && s > below) below = s;
  if (Number.isFinite(below)) return below;
  // Nothing scores lower: any value just under the target catches everything.
  return target - Math.max(1e-9, Math.abs(target) * 1e-9);
}

export function ratesAt(
  threshold: number,
  rows: LabelledScore[],
  trained: Set<number>,
  oof: Map<number, number> = new Map(),
): ThresholdRates {
  const { scores: good, basis } = goodPool(rows, trained, oof);
  const defect = rows.filter((r) => r.label === 'defect').map((r) => r.total);
  const falseAlarms = good.filter((s) => s > threshold).length;
  const caught = defect.filter((s) => s > threshold).length;
  return {
    falseAlarmRate: good.length ? falseAlarms / good.length : null,
    catchRate: defect.length ? caught / defect.length : null,
    goodCount: good.length,
    defectCount: defect.length,
    falseAlarms,
    caught,
    goodBasis: basis,
  };
}

/** Computes the threshold for a target; throws a clear error when the labels needed are missing. */
export function thresholdForTarget(
  db: Database.Database,
  modelId: number,
  target: { falseAlarmRate: number } | { catchRate: number },
): number {
  const rows = labelledScores(db, modelId);
  if ('falseAlarmRate' in target) {
    const { scores } = goodPool(rows, trainedIds(db, modelId), outOfFold(db, modelId));
    const t = thresholdForFalseAlarms(scores, target.falseAlarmRate);
    if (t === null) {
      throw new AppError(
        'invalid_input',
        'no scored image is labelled good yet: label good images and score them to set a false-alarm target',
      );
    }
    return t;
  }
  const defects = rows.filter((r) => r.label === 'defect').map((r) => r.total);
  const all =
    (db.prepare('SELECT total FROM scores WHERE model_id = ?').pluck().all(modelId) as number[]) ?? [];
  const t = thresholdForCatch(defects, target.catchRate, all);
  if (t === null) {
    throw new AppError(
      'invalid_input',
      'no scored image is labelled defect yet: label known defects and score them to set a catch target',
    );
  }
  return t;
}

const sourceKey = (modelId: number) => `threshold-source:${modelId}`;

export function saveThresholdSource(db: Database.Database, modelId: number, source: ThresholdSource): void {
  db.prepare(
    'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
  ).run(sourceKey(modelId), JSON.stringify(source));
}

/** How the model's threshold was chosen; a threshold with no record was the automatic first one. */
export function thresholdSource(
  db: Database.Database,
  modelId: number,
  hasThreshold: boolean,
): ThresholdSource | null {
  const r = db.prepare('SELECT value FROM settings WHERE key = ?').get(sourceKey(modelId)) as
    { value: string } | undefined;
  if (!r) return hasThreshold ? { kind: 'auto' } : null;
  try {
    return JSON.parse(r.value) as ThresholdSource;
  } catch {
    return { kind: 'value' };
  }
}

/** One sentence for people (reports). */
export function describeSource(source: ThresholdSource | null): string {
  if (!source) return 'no threshold set';
  switch (source.kind) {
    case 'value':
      return 'set by hand';
    case 'auto':
      return 'suggested automatically after scoring (at most 2 % false alarms on good-labelled images, by held-out scores when there are any; the 90th percentile of all scores without good labels)';
    case 'falseAlarmRate':
      return `from a target of at most ${pct(source.target)} false alarms on good-labelled images (held-out scores when there are any)`;
    case 'catchRate':
      return `from a target of at least ${pct(source.target)} of known defects caught`;
  }
}

export function pct(x: number | null): string {
  if (x === null) return '-';
  return `${(x * 100).toFixed(Number.isInteger(x * 100) ? 0 : 1)} %`;
}
