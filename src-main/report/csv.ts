/**
 * The CSV half of a report: one row per image of the batch, streamed to disk a page of
 * rows at a time with backpressure, so a batch of any size needs the memory of one page.
 */
import { once } from 'node:events';
import { stringify } from 'csv-stringify';
import { countedEvidence, toScale } from '../api/threshold';
import { headSign } from '../engine/types';
import { headNames, imagePages, type BatchQuery, type ReportRow } from './data';
import { writeThroughStream } from './file-stream';

export function decision(
  row: Pick<ReportRow, 'total'>,
  threshold: number | null,
): 'flagged' | 'pass' | 'unscored' {
  if (row.total === null) return 'unscored';
  if (threshold === null) return 'pass';
  return row.total > threshold ? 'flagged' : 'pass';
}

const num = (x: number | null | undefined): string => (x === null || x === undefined ? '' : String(x));

/**
 * How a labelled image enters the threshold's rates (api/threshold.ts ratesAt): counting
 * the rows by rate_outcome gives the report's, Review's and Evaluate's numbers.
 */
function rateOutcome(q: BatchQuery, r: ReportRow, counted: Set<number>): [string, string, string] {
  const e = q.evidence?.get(r.id);
  if (!e || q.threshold === null) return ['', '', ''];
  if (!counted.has(r.id)) return [e.basis, num(toScale(e.score, q.scale ?? null)), 'not counted'];
  const above = e.score > q.threshold;
  const outcome = e.label === 'good' ? (above ? 'false alarm' : 'good pass') : above ? 'caught' : 'missed';
  return [e.basis, num(toScale(e.score, q.scale ?? null)), outcome];
}

export async function writeReportCsv(
  q: BatchQuery,
  file: string,
  onRow: (done: number) => void = () => {},
): Promise<number> {
  const heads = headNames(q);
  return writeThroughStream(file, async ({ out, failed, watch }) => {
    const csv = stringify({
      header: true,
      columns: [
        'id',
        'path',
        'name',
        'batch',
        'status',
        'score',
        'score_baseline',
        ...heads.map((h) => `head_${h}`),
        'decision',
        'threshold',
        'label',
        'class',
        'rate_basis',
        'rate_score',
        'rate_outcome',
        'score_raw',
        'threshold_raw',
      ],
    });
    csv.pipe(out);
    watch(csv);
    // Which evidence counts: the rates' own rule (threshold.ts countedEvidence).
    const ev = [...(q.evidence?.values() ?? [])];
    const counted = new Set(
      [...countedEvidence(ev, 'good'), ...countedEvidence(ev, 'defect')].map((e) => e.imageId),
    );
    const scale = q.scale ?? null;
    const unit = scale?.unit ?? 1;
    let n = 0;
    for (const page of imagePages(q)) {
      for (const r of page) {
        // score = score_baseline + the head columns: each head as it enters the total (normality subtracted).
        const ok = csv.write([
          r.id,
          r.path,
          r.name,
          r.batch,
          r.status,
          num(r.total === null ? null : toScale(r.total, scale)),
          num(r.total === null ? null : -(scale?.offset ?? 0) / unit),
          ...heads.map((h) => num(r.perHead?.[h] === undefined ? null : (headSign(h) * r.perHead[h]) / unit)),
          decision(r, q.threshold),
          num(q.threshold === null ? null : toScale(q.threshold, scale)),
          r.label ?? 'unlabelled',
          r.className ?? '',
          ...rateOutcome(q, r, counted),
          num(r.total),
          num(q.threshold),
        ]);
        n++;
        if (!ok) await Promise.race([once(csv, 'drain'), failed]);
      }
      onRow(n);
      // Let other requests run between pages.
      await new Promise((r) => setImmediate(r));
    }
    csv.end();
    return n;
  });
}
