/**
 * Exports an inspection report (PDF and/or CSV) for a batch of a project. Files are
 * written under temporary names and renamed when complete: a failed export never leaves
 * a half-written report that looks finished.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import sharp from 'sharp';
import type { ModelInfo, OpOutput, ReportFormat } from '../api/contract';
import { AppError } from '../api/errors';
import {
  describeSource,
  modelEvidence,
  withEvidenceAuc,
  ratesAt,
  scoreScale,
  thresholdSource,
  toScale,
} from '../api/threshold';
import { heatmapPng } from '../project/heatmap-image';
import { thumbBytes } from '../project/thumbs';
import { notePendingFiles } from '../project/cleanup';
import type { ProjectStore } from '../project/store';
import { batchCounts, batchScores, histogram, type BatchQuery, type ReportRow } from './data';
import { writeReportCsv } from './csv';
import { evaluateModel } from './evaluate';
import { writeReportPdf, type ReportImages, type ReportMeta } from './pdf';

export interface ReportRequest {
  batch: string | null;
  format: ReportFormat;
  outDir: string;
  modelId?: number;
  date?: Date;
  /** Aborted when the project closes: the export stops and removes its temporary files. */
  signal?: AbortSignal;
}

export type ReportResult = OpOutput<'report.export'>;
export type ReportProgress = (p: { format: 'pdf' | 'csv'; done: number; total: number }) => void;

/**
 * mkdir -p, one level at a time: Node's recursive mkdir never returns for some paths
 * (under /proc it loops on ENOENT), and a report must fail, not hang.
 */
async function mkdirs(dir: string): Promise<void> {
  const missing: string[] = [];
  let d = dir;
  while (!(await stat(d).catch(() => null))) {
    missing.unshift(d);
    const up = dirname(d);
    if (up === d) break;
    d = up;
  }
  for (const m of missing)
    await mkdir(m).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
}

/** Makes sure `dir` exists and accepts files; says clearly why not otherwise. */
export async function ensureWritableFolder(dirIn: string): Promise<string> {
  const dir = resolve(dirIn);
  const explain = (why: string) =>
    new AppError('read_only', `Cannot write the report to ${dir}: ${why}. Choose a folder you can write to.`);
  const st = await stat(dir).catch(() => null);
  if (st && !st.isDirectory()) throw explain('it is a file, not a folder');
  try {
    await mkdirs(dir);
    // Root ignores permission bits: only a real write shows whether the folder takes files.
    const probe = join(dir, `.swan-report-probe-${process.pid}-${randomBytes(3).toString('hex')}`);
    await writeFile(probe, '');
    await rm(probe, { force: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const why =
      code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'EROFS'
          ? 'the file system is read-only'
          : code === 'ENOTDIR' || code === 'EEXIST'
            ? 'part of the path is a file, not a folder'
            : code === 'ENOENT'
              ? 'the folder cannot be created there'
              : (err as Error).message;
    throw explain(`${why} (${code})`);
  }
  return dir;
}

function safeName(s: string): string {
  return (
    s
      .replace(/[^\p{L}\p{N}._-]+/gu, '_')
      .replace(/^[._]+/, '')
      .slice(0, 80) || 'report'
  );
}

/** Thumbnails and heatmap overlays of flagged images, made one image at a time. */
export function storeImages(store: ProjectStore, modelId: number | null): ReportImages {
  let scale: number | null = null;
  const heatmapOf = store.db.prepare(
    'SELECT heatmap, heatmap_h AS h, heatmap_w AS w FROM scores WHERE image_id = ? AND model_id = ?',
  );
  return {
    async thumbnail(row: ReportRow) {
      const thumb = join(store.thumbsDir, `${row.sha256}.jpg`);
      const cached = await readFile(thumb).catch(() => null);
      if (cached) return cached;
      if (row.status !== 'ok') return null;
      return thumbBytes(row.path);
    },
    async overlay(row: ReportRow, thumb: Buffer | null) {
      if (!thumb || modelId === null) return null;
      const r = heatmapOf.get(row.id, modelId) as
        { heatmap: Buffer | null; h: number | null; w: number | null } | undefined;
      if (!r?.heatmap || !r.h || !r.w) return null;
      scale ??= store.heatmapReference(modelId);
      const data = new Float32Array(new Uint8Array(r.heatmap).buffer);
      const meta = await sharp(thumb).metadata();
      const png = await heatmapPng({ h: r.h, w: r.w, data }, scale, meta.width ?? 256, meta.height ?? 256);
      return sharp(thumb)
        .composite([{ input: png, blend: 'over' }])
        .jpeg({ quality: 80 })
        .toBuffer();
    },
  };
}

export async function exportReport(
  store: ProjectStore,
  req: ReportRequest,
  onProgress: ReportProgress = () => {},
  images?: ReportImages,
): Promise<ReportResult> {
  let model: ModelInfo | null = null;
  if (req.modelId !== undefined) model = store.getModel(req.modelId);
  else model = store.activeModel();
  if (model) model = withEvidenceAuc(store.db, model);
  const dir = await ensureWritableFolder(req.outDir);
  const threshold = model ? store.getThreshold(model.id) : null;
  // The rates and the score scale: the one rule Review and Evaluate use (api/threshold.ts).
  const evidence = model ? modelEvidence(store.db, model.id, req.batch) : [];
  const scale = model ? scoreScale(modelEvidence(store.db, model.id)) : null;
  const q: BatchQuery = {
    db: store.db,
    batch: req.batch,
    modelId: model?.id ?? null,
    threshold,
    evidence: new Map(evidence.map((e) => [e.imageId, e])),
    scale,
  };
  const counts = batchCounts(q);
  const date = req.date ?? new Date();
  const stamp = date.toISOString().slice(0, 19).replace(/[:T]/g, '-');
  const base = `report-${safeName(store.name)}-${safeName(req.batch ?? 'all')}-${stamp}`;
  const tag = randomBytes(3).toString('hex');
  const out: { pdf: string | null; csv: string | null } = { pdf: null, csv: null };
  const formats = req.format === 'both' ? (['csv', 'pdf'] as const) : [req.format];
  const temps = formats.map((f) => `${join(dir, `${base}.${f}`)}.part-${tag}`);
  // Noted in the project first: if the app dies mid-write, the next open removes them.
  const forget = notePendingFiles(store.db, temps);
  const progress: ReportProgress = (p) => {
    if (req.signal?.aborted)
      throw new AppError('no_project', 'the report export was stopped: the project was closed');
    onProgress(p);
  };
  try {
    if (req.format === 'csv' || req.format === 'both') {
      const file = join(dir, `${base}.csv`);
      const tmp = `${file}.part-${tag}`;
      await writeReportCsv(q, tmp, (done) => progress({ format: 'csv', done, total: counts.inspected }));
      await rename(tmp, file);
      out.csv = file;
    }
    if (req.format === 'pdf' || req.format === 'both') {
      const ev = model ? evaluateModel(store.db, model.id, req.batch, threshold) : null;
      const meta: ReportMeta = {
        projectName: store.name,
        projectDir: store.dir,
        batch: req.batch,
        date,
        model,
        threshold,
        scale,
        thresholdHow: model
          ? describeSource(thresholdSource(store.db, model.id, threshold !== null))
          : 'no model',
        rates: model && threshold !== null ? ratesAt(threshold, evidence) : null,
        counts,
        histogram: histogram(batchScores(q).map((b) => ({ ...b, total: toScale(b.total, scale) }))),
        batchMetrics: ev?.total
          ? {
              aucRoc: ev.total.aucRoc,
              averagePrecision: ev.total.averagePrecision,
              good: ev.good,
              defect: ev.defect,
            }
          : null,
      };
      const file = join(dir, `${base}.pdf`);
      const tmp = `${file}.part-${tag}`;
      await writeReportPdf(q, meta, images ?? storeImages(store, model?.id ?? null), tmp, (done, total) =>
        progress({ format: 'pdf', done, total }),
      );
      await rename(tmp, file);
      out.pdf = file;
    }
    forget();
  } catch (err) {
    await Promise.all(temps.map((t) => rm(t, { force: true })));
    forget();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'ENOSPC') {
      throw new AppError('read_only', `Writing the report to ${dir} failed: ${(err as Error).message}`);
    }
    throw err;
  }
  return {
    ...out,
    batch: req.batch,
    modelId: model?.id ?? null,
    modelVersion: model?.version ?? null,
    threshold,
    counts,
  };
}
