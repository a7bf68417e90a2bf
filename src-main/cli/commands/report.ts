/**
 * `swan report --project DIR [--batch NAME] --out DIR [--format pdf|csv|both]`: the
 * inspection report of the app, through the same API operation (`report.export`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AppError } from '../../api/errors';
import { ApiService } from '../../api/service';
import { CliError } from '../cli-error';
import { progressBar } from '../progress';

export interface ReportOptions {
  project: string;
  batch?: string;
  out: string;
  format: 'pdf' | 'csv' | 'both';
}

export async function runReport(opts: ReportOptions): Promise<void> {
  // The CLI never creates projects, and must not touch the app's recent list: a scratch folder.
  const scratch = mkdtempSync(join(tmpdir(), 'swan-cli-'));
  const api = new ApiService({ projectsRoot: scratch, stateDir: scratch });
  const bars = { csv: progressBar('report csv'), pdf: progressBar('report pdf') };
  const off = api.on((e) => {
    if (e.event === 'report.progress') bars[e.payload.format].update(e.payload.done, e.payload.total);
  });
  try {
    await api.invoke('project.open', { path: resolve(opts.project) });
    const r = await api.invoke('report.export', {
      batch: opts.batch ?? null,
      format: opts.format,
      outDir: resolve(opts.out),
    });
    bars.csv.stop();
    bars.pdf.stop();
    const c = r.counts;
    process.stdout.write(
      `${r.batch ? `batch "${r.batch}"` : 'all images'}: ${c.inspected} inspected, ${c.scored} scored, ${c.flagged} flagged, ` +
        `${c.labelled} labelled (model ${r.modelVersion === null ? 'none' : `v${r.modelVersion}`}, threshold ${r.threshold ?? 'none'})\n`,
    );
    if (r.pdf) process.stdout.write(`${r.pdf}\n`);
    if (r.csv) process.stdout.write(`${r.csv}\n`);
  } catch (err) {
    if (err instanceof AppError) throw new CliError(err.message);
    throw err;
  } finally {
    off();
    await api.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}
