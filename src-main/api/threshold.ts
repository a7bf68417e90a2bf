/**
 * Threshold from a target, and what a threshold does on the labelled images. An image is
 * flagged when its score is strictly above the threshold (as everywhere in the store), so
 * every threshold chosen here is an actual score: the image holding it passes.
 */
import type Database from 'better-sqlite3';
import type { ModelInfo, QueueCounts, ScoreScale, ThresholdRates, ThresholdSource } from './contract';
import { AppError } from './errors';
import { averagePrecision } from '../engine/metrics';
import { EVALUATION_BATCHES_KEY } from '../project/store';
import {
  outOfFoldScores,
  pooledAuc,
  referenceScores,
  type OutOfFoldEntry,
  type ReferenceScores,
} from '../models/held-out';
import { AUTO_FALSE_ALARMS } from './threshold-rule';

export { AUTO_FALSE_ALARMS, describeSource, pct } from './threshold-rule';

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

function metricsOf(db: Database.Database, modelId: number): Record<string, unknown> | null {
  const r = db.prepare('SELECT metrics FROM models WHERE id = ?').get(modelId) as
    { metrics: string | null } | undefined;
  if (!r?.metrics) return null;
  try {
    return JSON.parse(r.metrics) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** A model's out-of-fold scores by image id: raw (the fold model's scale) and z (carries over). */
export function outOfFold(db: Database.Database, modelId: number): Map<number, OutOfFoldEntry> {
  return outOfFoldScores(metricsOf(db, modelId));
}

/** Images the fold models score besides their held-out ones, at most (a scoring pass each). */
export const REFERENCE_IMAGES = 256;

/**
 * The images a retrain's fold models also score (engine TrainRequest.reference): readable
 * images outside the training set, evenly spread over the project by id, at most `max`.
 */
export function referenceSample(
  db: Database.Database,
  training: ReadonlySet<number>,
  max = REFERENCE_IMAGES,
): { id: string; path: string }[] {
  const rows = (
    db.prepare(`SELECT id, path FROM images WHERE status = 'ok' ORDER BY id`).all() as { id: number; path: string }[]
  ).filter((r) => !training.has(r.id));
  const step = Math.max(1, rows.length / max);
  const picked = Array.from({ length: Math.min(max, rows.length) }, (_, k) => rows[Math.floor(k * step)]);
  return picked.map((r) => ({ id: String(r.id), path: r.path }));
}

/** Fewer unlabelled images than this scored by both a fold model and the final one: map by z instead. */
export const MIN_REFERENCE = 20;

/**
 * Per fold, a map from the fold model's scale to the final model's, fitted on the images
 * neither trained on (the fold models' reference scores against the final model's scores of
 * the same images): least squares of the final score on the fold score. Null for a fold
 * with too few such images.
 */
export function foldMappings(
  ref: ReferenceScores | null,
  finalScores: ReadonlyMap<number, number>,
): (((x: number) => number) | null)[] {
  if (!ref) return [];
  return ref.folds.map((scores) => {
    const xs: number[] = [];
    const ys: number[] = [];
    scores.forEach((x, j) => {
      const y = finalScores.get(ref.ids[j]);
      if (y !== undefined) {
        xs.push(x);
        ys.push(y);
      }
    });
    if (xs.length < MIN_REFERENCE) return null;
    const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
    const my = ys.reduce((a, b) => a + b, 0) / ys.length;
    let sxy = 0;
    let sxx = 0;
    xs.forEach((x, k) => {
      sxy += (x - mx) * (ys[k] - my);
      sxx += (x - mx) ** 2;
    });
    if (!(sxx > 1e-12)) return null;
    const b = sxy / sxx;
    return (x: number) => my + b * (x - mx);
  });
}

/**
 * One labelled image's evidence on the model's own score scale, and where it comes from:
 * 'held-out': the model did not train on it, its own score; 'out-of-fold': trained on, so
 * the score a fold model without it gave, carried over to this model's scale (fold models
 * and the final model do not share a scale): by foldMappings, fitted on unlabelled images
 * both scored, when the model has them; else (older models) its z against the fold model's
 * training normals, times this model's spread of in-sample good scores, plus their mean;
 * 'in-sample': trained on and not cross-validated, its own score (optimistic).
 */
export interface Evidence {
  imageId: number;
  label: 'good' | 'defect';
  score: number;
  basis: 'held-out' | 'out-of-fold' | 'in-sample';
  /** A defect labelled from an earlier model's queue (queuePicks): not a random sample of the defects. */
  picked?: true;
}

/**
 * Defects labelled because a model (this one or another) flagged them: labelled after that
 * model was made, scored by it without its having trained on them, above its threshold,
 * outside the evaluation batches. Decided from the top of the queue, they are the defects
 * easiest to find, and they leave the queue: counted, they promise a catch rate the images
 * still in the queue do not reach (scripts/threshold-rules.ts --picks). Good images picked
 * the same way still count: they are the high-scoring normals the false-alarm rate is about.
 */
export function queuePicks(db: Database.Database): Set<number> {
  const rows = db
    .prepare(
      `SELECT DISTINCT l.image_id AS id FROM labels l
       JOIN images i ON i.id = l.image_id
       JOIN models p ON l.updated_at > p.created_at
       JOIN scores s ON s.image_id = l.image_id AND s.model_id = p.id
       JOIN settings t ON t.key = 'threshold:' || p.id AND s.total > CAST(t.value AS REAL)
       WHERE l.label = 'defect'
         AND l.image_id NOT IN (SELECT value FROM json_each(p.label_ids))
         AND i.batch NOT IN (SELECT value FROM json_each(COALESCE((SELECT value FROM settings WHERE key = @eval), '[]')))`,
    )
    .pluck()
    .all({ eval: EVALUATION_BATCHES_KEY }) as number[];
  return new Set(rows);
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
  const metrics = metricsOf(db, modelId);
  const oof = outOfFoldScores(metrics);
  const ref = meanSd(all.filter((r) => r.label === 'good' && trained.has(r.imageId)).map((r) => r.total));
  const refScores = referenceScores(metrics?.reference_scores);
  const maps = refScores
    ? foldMappings(
        refScores,
        new Map(
          (
            db
              .prepare(
                'SELECT image_id AS id, total FROM scores WHERE model_id = ? AND image_id IN (SELECT value FROM json_each(?))',
              )
              .all(modelId, JSON.stringify(refScores.ids)) as {
              id: number;
              total: number;
            }[]
          ).map((s) => [s.id, s.total]),
        ),
      )
    : [];
  const carried = (o: OutOfFoldEntry): number => {
    const map = o.fold !== undefined ? maps[o.fold] : null;
    if (map) return map(o.total);
    return o.z !== undefined ? ref.mean + ref.sd * o.z : o.total;
  };
  const rows = batch ? labelledScores(db, modelId, batch) : all;
  const picks = queuePicks(db);
  return rows.map((r) => {
    const pick = picks.has(r.imageId) ? ({ picked: true } as const) : {};
    if (!trained.has(r.imageId))
      return { imageId: r.imageId, label: r.label, score: r.total, basis: 'held-out', ...pick };
    const o = oof.get(r.imageId);
    if (o) return { imageId: r.imageId, label: r.label, score: carried(o), basis: 'out-of-fold', ...pick };
    return { imageId: r.imageId, label: r.label, score: r.total, basis: 'in-sample', ...pick };
  });
}

/**
 * The images that count for one label's rate: the held-out and out-of-fold ones when there
 * are any (they predict unseen images), else the in-sample ones; of the defects, those not
 * picked from an earlier queue when any are left.
 */
export function countedEvidence(ev: Evidence[], label: 'good' | 'defect'): Evidence[] {
  const mine = ev.filter((e) => e.label === label);
  const held = mine.filter((e) => e.basis !== 'in-sample');
  const base = held.length > 0 ? held : mine;
  const unpicked = base.filter((e) => !e.picked);
  return unpicked.length > 0 ? unpicked : base;
}

function basisOf(counted: Evidence[]): ThresholdRates['goodBasis'] {
  if (counted.length === 0) return 'none';
  if (counted.every((e) => e.basis === 'in-sample')) return 'in-sample';
  return counted.some((e) => e.basis === 'out-of-fold') ? 'out-of-fold' : 'held-out';
}

/**
 * A model's held-out AUC-ROC on the evidence its rates count (countedEvidence: held-out
 * images and out-of-fold scores carried over, queue-picked defects left out), with a 95 %
 * interval, in its metrics in place of the engine's pooling of the folds on z: one basis
 * with the threshold and Evaluate, and nearer the model's real ranking of unseen images
 * (docs/benchmarks/threshold-rules.md). The engine's numbers stay as folds_pooled_auc_roc / _ap.
 */
export function withEvidenceAuc(db: Database.Database, model: ModelInfo): ModelInfo {
  if (!model.metrics || typeof model.metrics.out_of_fold !== 'object') return model;
  const ev = modelEvidence(db, model.id);
  const counted = [...countedEvidence(ev, 'good'), ...countedEvidence(ev, 'defect')].filter(
    (e) => e.basis !== 'in-sample',
  );
  const a = pooledAuc(
    Object.fromEntries(counted.map((e) => [String(e.imageId), { label: e.label, total: e.score, z: e.score }])),
  );
  if (!a) return model;
  const metrics = { ...model.metrics };
  if (typeof metrics.auc_roc === 'number') metrics.folds_pooled_auc_roc = metrics.auc_roc;
  if (typeof metrics.ap === 'number') metrics.folds_pooled_ap = metrics.ap;
  Object.assign(metrics, {
    auc_roc: a.auc,
    ap: averagePrecision(
      counted.map((e) => e.score),
      counted.map((e) => (e.label === 'defect' ? 1 : 0)),
    ),
    auc_ci_low: a.low,
    auc_ci_high: a.high,
    auc_good: a.good,
    auc_defect: a.defect,
  });
  return { ...model, metrics };
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
    defectsPicked: ev.filter((e) => e.label === 'defect' && e.picked && !defect.includes(e)).length,
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
