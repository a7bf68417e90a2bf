/**
 * Threshold from a target, and what a threshold does on the labelled images. An image is
 * flagged when its score is strictly above the threshold (as everywhere in the store), so
 * every threshold chosen here is an actual score: the image holding it passes.
 */
import type Database from 'better-sqlite3';
import type { QueueCounts, ScoreScale, ThresholdRates, ThresholdSource } from './contract';
import { AppError } from './errors';
import { outOfFoldScores, type OutOfFoldEntry } from '../models/held-out';

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

/** A model's out-of-fold scores by image id: raw (the fold model's scale) and z (carries over). */
export function outOfFold(db: Database.Database, modelId: number): Map<number, OutOfFoldEntry> {
  const r = db.prepare('SELECT metrics FROM models WHERE id = ?').get(modelId) as
    { metrics: string | null } | undefined;
  if (!r?.metrics) return new Map();
  try {
    return outOfFoldScores(JSON.parse(r.metrics) as Record<string, unknown>);
  } catch {
    return new Map();
  }
}

/**
 * One labelled image's evidence on the model's own score scale, and where it comes from:
 * 'held-out': the model did not train on it, its own score; 'out-of-fold': trained on, so
 * the score a fold model without it gave, carried over to this model's scale (its z against
 * the fold model's training normals, times this model's spread of in-sample good scores,
 * plus their mean: fold models and the final model do not share a scale); 'in-sample':
 * trained on and not cross-validated, its own score (optimistic).
 */
export interface Evidence {
  imageId: number;
  label: 'good' | 'defect';
  score: number;
  basis: 'held-out' | 'out-of-fold' | 'in-sample';
}

function meanSd(xs: number[]): { mean: number; sd: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const v = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1);
  return { mean, sd: Math.sqrt(v) > 1e-9 ? Math.sqrt(v) : 1 };
}

/**
 * The evidence of every labelled, scored image of the model (of one batch, or all). The
 * mapping of out-of-fold z onto the model uses all its training good images, whatever the batch.
 */
export function modelEvidence(db: Database.Database, modelId: number, batch?: string | null): Evidence[] {
  const all = labelledScores(db, modelId);
  const trained = trainedIds(db, modelId);
  const oof = outOfFold(db, modelId);
  const ref = meanSd(all.filter((r) => r.label === 'good' && trained.has(r.imageId)).map((r) => r.total));
  const rows = batch ? labelledScores(db, modelId, batch) : all;
  return rows.map((r) => {
    if (!trained.has(r.imageId)) return { imageId: r.imageId, label: r.label, score: r.total, basis: 'held-out' };
    const o = oof.get(r.imageId);
    if (o)
      return {
        imageId: r.imageId,
        label: r.label,
        score: o.z !== undefined ? ref.mean + ref.sd * o.z : o.total,
        basis: 'out-of-fold',
      };
    return { imageId: r.imageId, label: r.label, score: r.total, basis: 'in-sample' };
  });
}

/**
 * The images that count for one label's rate: the held-out and out-of-fold ones when there
 * are any (they predict unseen images), else the in-sample ones.
 */
export function countedEvidence(ev: Evidence[], label: 'good' | 'defect'): Evidence[] {
  const mine = ev.filter((e) => e.label === label);
  const held = mine.filter((e) => e.basis !== 'in-sample');
  return held.length > 0 ? held : mine;
}

function basisOf(counted: Evidence[]): ThresholdRates['goodBasis'] {
  if (counted.length === 0) return 'none';
  if (counted.every((e) => e.basis === 'in-sample')) return 'in-sample';
  return counted.some((e) => e.basis === 'out-of-fold') ? 'out-of-fold' : 'held-out';
}

/** Wilson score interval (95 %) of k successes in n; null when n = 0. */
export function wilson(k: number, n: number, z = 1.96): [number, number] | null {
  if (n === 0) return null;
  const p = k / n;
  const d = 1 + (z * z) / n;
  const c = (p + (z * z) / (2 * n)) / d;
  const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return [Math.max(0, c - h), Math.min(1, c + h)];
}

/**
 * The readable scale of a model: 0 at the mean of its good evidence (held-out or carried-over
 * cross-validation scores), one unit per standard deviation of it.
 */
export function scoreScale(ev: Evidence[]): ScoreScale | null {
  const good = countedEvidence(ev, 'good');
  if (good.length === 0) return null;
  const { mean, sd } = meanSd(good.map((e) => e.score));
  return { offset: mean, unit: good.length > 1 ? sd : 1, basis: basisOf(good), goodCount: good.length };
}

export const toScale = (raw: number, s: ScoreScale | null): number => (s ? (raw - s.offset) / s.unit : raw);

/** Unlabelled scored images of the model, and how many the threshold flags. */
export function queueCounts(db: Database.Database, modelId: number, threshold: number | null): QueueCounts {
  const r = db
    .prepare(
      `SELECT COUNT(*) AS unlabelled, SUM(s.total > @t) AS flagged FROM scores s
       LEFT JOIN labels l ON l.image_id = s.image_id WHERE s.model_id = @m AND l.label IS NULL`,
    )
    .get({ m: modelId, t: threshold ?? Number.MAX_VALUE }) as { unlabelled: number; flagged: number | null };
  return { unlabelled: r.unlabelled, flagged: threshold === null ? 0 : (r.flagged ?? 0) };
}

const quantile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.min(s.length - 1, Math.ceil(p * s.length) - 1))];
};

/**
 * When the unlabelled images score well above what the labelled good ones predict (90 % of
 * them above the median good evidence), the labelled good images do not stand for this
 * batch and the expected false alarms are too low: say so. On the HeadCT loop subsets
 * (scripts/threshold-loop.ts) this fired on the one labelled set whose goods were unlike
 * the rest, and on no other.
 */
export function shiftWarning(ev: Evidence[], unlabelled: number[]): string | null {
  const good = countedEvidence(ev, 'good').map((e) => e.score);
  if (good.length < 5 || unlabelled.length < 20) return null;
  if (quantile(unlabelled, 0.1) <= quantile(good, 0.5)) return null;
  return 'the unlabelled images score higher than the labelled good images predict (90 % of them above the typical labelled good image): the good labels may not represent these images, so expect more false alarms than shown; label some good images from the low end of the queue';
}

/** Everything a view shows about a model's threshold, from the one rule. */
export function verdict(db: Database.Database, modelId: number, threshold: number | null) {
  const ev = modelEvidence(db, modelId);
  const pool = db
    .prepare(
      `SELECT s.total FROM scores s LEFT JOIN labels l ON l.image_id = s.image_id
       WHERE s.model_id = ? AND l.label IS NULL`,
    )
    .pluck()
    .all(modelId) as number[];
  const shift = shiftWarning(ev, pool);
  return {
    rates: threshold === null ? null : ratesAt(threshold, ev),
    scale: scoreScale(ev),
    queue: queueCounts(db, modelId, threshold),
    warnings: shift ? [shift] : [],
  };
}

/** Fewer than this many images behind a rate: the UI says the evidence is thin. */
export const THIN_EVIDENCE = { good: 30, defect: 10 };

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

/**
 * What a threshold does, by the one rule every view uses (Review, Evaluate, the PDF, the
 * CSV): an image is flagged when its evidence score is strictly above the threshold, counted
 * over countedEvidence per label.
 */
export function ratesAt(threshold: number, ev: Evidence[]): ThresholdRates {
  const good = countedEvidence(ev, 'good');
  const defect = countedEvidence(ev, 'defect');
  const falseAlarms = good.filter((e) => e.score > threshold).length;
  const caught = defect.filter((e) => e.score > threshold).length;
  const thin: string[] = [];
  if (good.length < THIN_EVIDENCE.good) thin.push(`${good.length} good images`);
  if (defect.length < THIN_EVIDENCE.defect) thin.push(`${defect.length} defects`);
  return {
    falseAlarmRate: good.length ? falseAlarms / good.length : null,
    catchRate: defect.length ? caught / defect.length : null,
    falseAlarmInterval: wilson(falseAlarms, good.length),
    catchInterval: wilson(caught, defect.length),
    goodCount: good.length,
    defectCount: defect.length,
    falseAlarms,
    caught,
    goodBasis: basisOf(good),
    defectBasis: basisOf(defect),
    thinEvidence: thin.length ? `only ${thin.join(' and ')} behind these rates: the intervals are wide` : null,
  };
}

/** Computes the threshold for a target; throws a clear error when the labels needed are missing. */
export function thresholdForTarget(
  db: Database.Database,
  modelId: number,
  target: { falseAlarmRate: number } | { catchRate: number },
): number {
  const ev = modelEvidence(db, modelId);
  if ('falseAlarmRate' in target) {
    const t = thresholdForFalseAlarms(
      countedEvidence(ev, 'good').map((e) => e.score),
      target.falseAlarmRate,
    );
    if (t === null) {
      throw new AppError(
        'invalid_input',
        'no scored image is labelled good yet: label good images and score them to set a false-alarm target',
      );
    }
    return t;
  }
  const defects = countedEvidence(ev, 'defect').map((e) => e.score);
  const all = [
    ...((db.prepare('SELECT total FROM scores WHERE model_id = ?').pluck().all(modelId) as number[]) ?? []),
    ...ev.map((e) => e.score),
  ];
  const t = thresholdForCatch(defects, target.catchRate, all);
  if (t === null) {
    throw new AppError(
      'invalid_input',
      'no scored image is labelled defect yet: label known defects and score them to set a catch target',
    );
  }
  return t;
}

/** The false-alarm share on the good evidence the automatic threshold aims at. */
export const AUTO_FALSE_ALARMS = 0.15;

/**
 * The automatic threshold of a new model, from its own held-out evidence (never a previous
 * model's): at most AUTO_FALSE_ALARMS of the good evidence above it. Null without a scored
 * good image (the caller falls back to a score quantile).
 */
export function automaticThreshold(db: Database.Database, modelId: number): number | null {
  const good = countedEvidence(modelEvidence(db, modelId), 'good').map((e) => e.score);
  return thresholdForFalseAlarms(good, AUTO_FALSE_ALARMS);
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
