/**
 * Evaluation on ground-truth labels: the engine's metrics (scikit-learn definitions) for
 * the model's total score and for each head alone, and the confusion counts at the
 * model's threshold. Curves keep finite thresholds only: JSON has no Infinity.
 */
import type Database from 'better-sqlite3';
import type { CurveSet, ModelEvaluation } from '../api/contract';
import { AppError } from '../api/errors';
import { countedEvidence, labelledScores, modelEvidence, thresholdSource, type Evidence } from '../api/threshold';
import { aucRoc, averagePrecision, headAnomalyScore, prCurve, rocCurve } from '../engine/metrics';

export function curveSet(scores: number[], labels: number[]): CurveSet {
  return {
    aucRoc: aucRoc(scores, labels),
    averagePrecision: averagePrecision(scores, labels),
    roc: rocCurve(scores, labels)
      .filter((p) => Number.isFinite(p.threshold))
      .map((p) => ({ x: p.fpr, y: p.tpr, threshold: p.threshold })),
    pr: prCurve(scores, labels)
      .filter((p) => Number.isFinite(p.threshold))
      .map((p) => ({ x: p.recall, y: p.precision, threshold: p.threshold })),
  };
}

/** Which images and scores the total's curves and the confusion counts use, for people. */
export function basisWords(counted: Evidence[]): string {
  const n = (b: Evidence['basis']) => counted.filter((e) => e.basis === b).length;
  const parts: string[] = [];
  if (n('held-out')) parts.push(`${n('held-out')} not trained on (their own scores)`);
  if (n('out-of-fold')) parts.push(`${n('out-of-fold')} trained on, by their cross-validation scores`);
  if (n('in-sample')) parts.push(`${n('in-sample')} trained on, by their own scores (optimistic)`);
  return parts.length ? `labelled images: ${parts.join('; ')}` : 'no labelled image';
}

/** The defects the counted evidence leaves out because an earlier queue found them (threshold.ts queuePicks). */
function pickedWords(evidence: Evidence[], counted: Evidence[]): string {
  const n = evidence.filter((e) => e.picked && !counted.includes(e)).length;
  return n ? `; ${n} defects decided from an earlier model's queue not counted (the easiest to find)` : '';
}

export function evaluateModel(
  db: Database.Database,
  modelId: number,
  batch: string | null,
  threshold: number | null,
): ModelEvaluation {
  const model = db.prepare('SELECT version FROM models WHERE id = ?').get(modelId) as
    { version: number } | undefined;
  if (!model) throw new AppError('not_found', `model ${modelId} does not exist in this project`);
  const rows = labelledScores(db, modelId, batch);
  const labelledInBatch = (
    db
      .prepare(
        `SELECT COUNT(*) AS n FROM images i JOIN labels l ON l.image_id = i.id ${batch ? 'WHERE i.batch = ?' : ''}`,
      )
      .get(...(batch ? [batch] : [])) as { n: number }
  ).n;
  const labels = rows.map((r) => (r.label === 'defect' ? 1 : 0));
  const defect = labels.reduce<number>((a, b) => a + b, 0);
  const good = rows.length - defect;

  // The confusion counts: the images and scores the rates of Review, the PDF and the CSV
  // count (api/threshold.ts ratesAt), so all four agree.
  const evidence = modelEvidence(db, modelId, batch);
  const counted = [...countedEvidence(evidence, 'good'), ...countedEvidence(evidence, 'defect')];
  const confusion = { threshold, tp: 0, fp: 0, tn: 0, fn: 0 };
  if (threshold !== null) {
    for (const r of counted) {
      const flagged = r.score > threshold;
      if (r.label === 'defect') {
        if (flagged) confusion.tp++;
        else confusion.fn++;
      } else if (flagged) confusion.fp++;
      else confusion.tn++;
    }
  }
  const basis = basisWords(counted) + pickedWords(evidence, counted);

  let note: string | null = null;
  let total: CurveSet | null = null;
  const heads: Record<string, CurveSet> = {};
  if (good === 0 || defect === 0) {
    note =
      rows.length === 0
        ? 'no labelled image has a score from this model: label images good or defect and score them'
        : `curves need both kinds of labels among the scored images (good: ${good}, defect: ${defect})`;
  } else {
    // The total's curves on the same evidence as the rates: held-out where there is any.
    const cl = counted.map((e) => (e.label === 'defect' ? 1 : 0));
    total =
      cl.includes(0) && cl.includes(1)
        ? curveSet(
            counted.map((e) => e.score),
            cl,
          )
        : null;
    const perHead = rows.map((r) => JSON.parse(r.perHead) as Record<string, number>);
    const names = [...new Set(perHead.flatMap((p) => Object.keys(p)))];
    for (const h of names) {
      // A head missing for some image (switched off in a later version) cannot be compared fairly.
      if (!perHead.every((p) => Number.isFinite(p[h]))) continue;
      heads[h] = curveSet(
        perHead.map((p) => headAnomalyScore(h, p[h])),
        labels,
      );
    }
  }
  return {
    modelId,
    version: model.version,
    good,
    defect,
    unscored: labelledInBatch - rows.length,
    total,
    heads,
    confusion,
    thresholdSource: thresholdSource(db, modelId, threshold !== null),
    note,
    basis,
    counted: { good: confusion.tn + confusion.fp, defect: confusion.tp + confusion.fn },
  };
}
