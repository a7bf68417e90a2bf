/**
 * The CSV half of a report: one row per image of the batch, streamed to disk a page of
 * rows at a time with backpressure, so a batch of any size needs the memory of one page.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { stringify } from 'csv-stringify';
import { headNames, imagePages, type BatchQuery, type ReportRow } from './data';

export function decision(
  row: Pick<ReportRow, 'total'>,
  threshold: number | null,
): 'flagged' | 'pass' | 'unscored' {
  if (row.total === null) return 'unscored';
  if (threshold === null) return 'pass';
  return row.total > threshold ? 'flagged' : 'pass';
}

const num = (x: number | null | undefined): string => (x === null || x === undefined ? '' : String(x));

export async function writeReportCsv(
  q: BatchQuery,
  file: string,
  onRow: (done: number) => void = () => {},
): Promise<number> {
  const heads = headNames(q);
  const out = createWriteStream(file);
  const csv = stringify({
    header: true,
    columns: [
      'id',
      'path',
      'name',
      'batch',
      'status',
      'score',
      ...heads.map((h) => `head_${h}`),
      'decision',
      'threshold',
      'label',
      'class',
    ],
  });
  csv.pipe(out);
  const failed = new Promise<never>((_, rej) => {
    out.on('error', rej);
    csv.on('error', rej);
  });
  failed.catch(() => undefined);
  let n = 0;
  for (const page of imagePages(q)) {
    for (const r of page) {
      const ok = csv.write([
        r.id,
        r.path,
        r.name,
        r.batch,
        r.status,
        num(r.total),
        ...heads.map((h) => num(r.perHead?.[h])),
        decision(r, q.threshold),
        num(q.threshold),
        r.label ?? 'unlabelled',
        r.className ?? '',
      ]);
      n++;
      if (!ok) await Promise.race([once(csv, 'drain'), failed]);
    }
    onRow(n);
    // Let other requests run between pages.
    await new Promise((r) => setImmediate(r));
  }
  csv.end();
  await Promise.race([once(out, 'finish'), failed]);
  return n;
}
