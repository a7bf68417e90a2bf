/**
 * The PDF half of a report, drawn with pdfkit. pdfkit writes each page to the output
 * stream when the next one starts and embeds each JPEG once, so memory stays at one page
 * of images however many images are flagged; the flagged images are read a few at a time.
 * The same code runs in every front door (Electron, browser mode, CLI): no browser needed.
 */
import PDFDocument from 'pdfkit';
import type { ModelInfo, ReportCounts, ScoreScale, ThresholdRates } from '../api/contract';
import { pct, toScale } from '../api/threshold';
import { headSign } from '../engine/types';
import { heldOutSummary } from '../models/held-out';
import { flaggedIds, rowsById, type BatchQuery, type Histogram, type ReportRow } from './data';
import { writeThroughStream } from './file-stream';

export interface ReportMeta {
  projectName: string;
  projectDir: string;
  /** null: every image of the project. */
  batch: string | null;
  date: Date;
  model: ModelInfo | null;
  /** On the raw scale; shown on `scale`. */
  threshold: number | null;
  /** The model's readable score scale (api/threshold.ts scoreScale); null: raw scores. */
  scale: ScoreScale | null;
  thresholdHow: string;
  rates: ThresholdRates | null;
  counts: ReportCounts;
  histogram: Histogram | null;
  /** AUC-ROC and AP on the batch's own labels, when it has both kinds. */
  batchMetrics: { aucRoc: number; averagePrecision: number; good: number; defect: number } | null;
}

/** Pictures of one flagged image, as JPEG; null when they cannot be made (file missing...). */
export interface ReportImages {
  thumbnail(row: ReportRow): Promise<Buffer | null>;
  overlay(row: ReportRow, thumbnail: Buffer | null): Promise<Buffer | null>;
}

const PAGE = { w: 595.28, h: 841.89, margin: 40 };
const CONTENT_W = PAGE.w - 2 * PAGE.margin;
const ROW_H = 138;
const IMG = 120;
/** Flagged images prepared at once: enough to overlap image work, few enough to bound memory. */
export const FLAGGED_CHUNK = 8;

const COLORS = {
  good: '#3a9d5d',
  defect: '#d64545',
  unlabelled: '#9aa3ad',
  threshold: '#c0392b',
  text: '#222222',
  muted: '#666666',
};

/** The standard PDF fonts speak Latin-1 only: other characters print as '?' (the CSV keeps them). */
export function pdfText(s: string): string {
  return s.replace(/[^\x20-\x7e\xa0-\xff]/g, '?');
}

const fmt = (x: number | null | undefined, d = 4): string =>
  x === null || x === undefined || !Number.isFinite(x)
    ? '-'
    : Math.abs(x) >= 1000
      ? x.toFixed(0)
      : x.toPrecision(d);

function basisWords(basis: ThresholdRates['goodBasis'], kind: string): string {
  if (basis === 'held-out') return `${kind} images not trained on`;
  if (basis === 'out-of-fold') return `${kind} images, those trained on by their cross-validation scores,`;
  if (basis === 'in-sample')
    return `${kind} images, by the model's own scores of its training images (optimistic),`;
  return `${kind} images`;
}

const interval = (i: [number, number] | null): string =>
  i ? `, 95 % interval ${pct(i[0])}-${pct(i[1])}` : '';

/** How the scores read, one sentence. */
export function scaleWords(s: ScoreScale | null): string {
  if (!s) return 'raw model scores (no good-labelled image to calibrate them on)';
  return `0 = a typical good image, 1 = one standard deviation more unusual than good images (${s.goodCount} good images, ${s.basis === 'in-sample' ? 'in-sample: optimistic' : 'held-out evidence'})`;
}

function flatMetrics(m: Record<string, unknown> | null): [string, string][] {
  if (!m) return [];
  const out: [string, string][] = [];
  const walk = (prefix: string, v: unknown) => {
    if (typeof v === 'number') out.push([prefix, fmt(v)]);
    else if (v && typeof v === 'object' && !Array.isArray(v))
      for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}.${k}` : k, x);
  };
  walk('', m);
  return out.slice(0, 24);
}

/**
 * The model's held-out metrics and how they were measured; a model without them says so,
 * and metrics of another shape (an imported model's) are listed as they are.
 */
export function modelMetricRows(metrics: Record<string, unknown> | null): [string, string][] {
  const held = heldOutSummary(metrics);
  if (held) {
    const rows: [string, string][] = [
      [
        'Held-out metrics',
        held.headline
          ? `${held.headline}, by ${held.how} (out-of-fold scores)`
          : `not measured: ${held.notes.find((n) => /not computed|needs at least|not estimable/.test(n)) ?? held.how}`,
      ],
    ];
    if (held.perHead) rows.push(['Per-head AUC-ROC', held.perHead]);
    return rows;
  }
  const flat = flatMetrics(metrics);
  if (flat.length) return [['Model metrics', flat.map(([k, v]) => `${k} ${v}`).join(', ')]];
  return [['Held-out metrics', 'none recorded at training (the model was trained without cross-validation)']];
}

/** What each head adds to the total: the normality head is subtracted. */
export function contributions(perHead: Record<string, number>): [string, number][] {
  return Object.entries(perHead).map(([h, v]) => [headSign(h) < 0 ? `minus ${h}` : h, headSign(h) * v]);
}

function drawHistogram(
  doc: PDFKit.PDFDocument,
  hist: Histogram,
  threshold: number | null,
  x: number,
  y: number,
  w: number,
  h: number,
): void {
  const maxCount = Math.max(1, ...hist.bins.map((b) => b.good + b.defect + b.unlabelled));
  const bw = w / hist.bins.length;
  doc.save();
  doc.lineWidth(0.5).rect(x, y, w, h).stroke('#bbbbbb');
  hist.bins.forEach((b, k) => {
    let top = y + h;
    for (const kind of ['good', 'defect', 'unlabelled'] as const) {
      const n = b[kind];
      if (n === 0) continue;
      const bh = (n / maxCount) * (h - 4);
      top -= bh;
      doc.rect(x + k * bw + 0.5, top, Math.max(0.5, bw - 1), bh).fill(COLORS[kind]);
    }
  });
  if (threshold !== null) {
    const t = Math.max(hist.min, Math.min(hist.max, threshold));
    const tx = x + ((t - hist.min) / (hist.max - hist.min)) * w;
    doc
      .lineWidth(1.5)
      .dash(4, { space: 3 })
      .moveTo(tx, y - 4)
      .lineTo(tx, y + h)
      .stroke(COLORS.threshold)
      .undash();
    doc
      .fillColor(COLORS.threshold)
      .fontSize(8)
      .text(`threshold ${fmt(threshold)}`, Math.min(tx + 3, x + w - 80), y - 2, { lineBreak: false });
  }
  doc.fillColor(COLORS.muted).fontSize(8);
  doc.text(fmt(hist.min), x, y + h + 3, { lineBreak: false });
  doc.text(fmt(hist.max), x + w - 60, y + h + 3, { width: 60, align: 'right', lineBreak: false });
  doc.text('score (0 = typical good image)', x + w / 2 - 70, y + h + 3, {
    width: 140,
    align: 'center',
    lineBreak: false,
  });
  // Legend.
  let lx = x;
  for (const kind of ['good', 'defect', 'unlabelled'] as const) {
    doc.rect(lx, y + h + 16, 8, 8).fill(COLORS[kind]);
    doc
      .fillColor(COLORS.text)
      .fontSize(8)
      .text(kind, lx + 11, y + h + 16, { lineBreak: false });
    lx += 70;
  }
  doc.restore();
}

function keyValues(
  doc: PDFKit.PDFDocument,
  rows: [string, string][],
  x: number,
  y: number,
  keyW = 130,
): number {
  for (const [k, v] of rows) {
    doc
      .font('Helvetica-Bold')
      .fontSize(10)
      .fillColor(COLORS.text)
      .text(pdfText(k), x, y, { width: keyW, lineBreak: false });
    doc.font('Helvetica').text(pdfText(v), x + keyW, y, { width: CONTENT_W - keyW });
    y = doc.y + 3;
  }
  return y;
}

function drawSummary(doc: PDFKit.PDFDocument, m: ReportMeta): void {
  const x = PAGE.margin;
  doc.font('Helvetica-Bold').fontSize(20).fillColor(COLORS.text).text('Inspection report', x, PAGE.margin);
  doc
    .font('Helvetica')
    .fontSize(10)
    .fillColor(COLORS.muted)
    .text('Swan Inspector', x, doc.y + 2);
  let y = doc.y + 12;
  const model = m.model;
  const rows: [string, string][] = [
    ['Project', `${m.projectName} (${m.projectDir})`],
    ['Batch', m.batch ?? 'all images of the project'],
    ['Date', `${m.date.toISOString().slice(0, 16).replace('T', ' ')} UTC`],
    [
      'Model',
      model
        ? `version ${model.version}, trained ${model.createdAt.slice(0, 16).replace('T', ' ')} on ${model.labelCounts.good} good and ${model.labelCounts.defect} defect images${model.active ? ' (active)' : ''}`
        : 'none: no model has scored these images',
    ],
  ];
  rows.push(...modelMetricRows(model?.metrics ?? null));
  if (m.batchMetrics) {
    rows.push([
      'On this batch',
      `AUC-ROC ${fmt(m.batchMetrics.aucRoc)}, AP ${fmt(m.batchMetrics.averagePrecision)} (${m.batchMetrics.good} good, ${m.batchMetrics.defect} defect labels)`,
    ]);
  }
  y = keyValues(doc, rows, x, y);

  y += 8;
  doc.font('Helvetica-Bold').fontSize(13).fillColor(COLORS.text).text('Counts', x, y);
  y = doc.y + 4;
  const c = m.counts;
  y = keyValues(
    doc,
    [
      [
        'Inspected',
        `${c.inspected} images${c.missing ? ` (${c.missing} file${c.missing === 1 ? '' : 's'} missing)` : ''}`,
      ],
      ['Scored', `${c.scored}`],
      ['Flagged', `${c.flagged}`],
      ['Labelled', `${c.labelled} (good ${c.good}, defect ${c.defect})`],
    ],
    x,
    y,
  );

  y += 8;
  doc.font('Helvetica-Bold').fontSize(13).fillColor(COLORS.text).text('Threshold', x, y);
  y = doc.y + 4;
  const r = m.rates;
  const rateRows: [string, string][] = [
    [
      'Value',
      m.threshold === null
        ? 'none set: nothing is flagged'
        : `${fmt(toScale(m.threshold, m.scale), 4)} (raw model score ${fmt(m.threshold, 6)})`,
    ],
    ['Score scale', scaleWords(m.scale)],
    ['How it was chosen', m.thresholdHow],
  ];
  if (r && m.threshold !== null) {
    rateRows.push([
      'False alarms',
      r.falseAlarmRate === null
        ? 'no good-labelled image to measure them on'
        : `${pct(r.falseAlarmRate)} (${r.falseAlarms} of ${r.goodCount} ${basisWords(r.goodBasis, 'good')} above it${interval(r.falseAlarmInterval)})`,
    ]);
    rateRows.push([
      'Defects caught',
      r.catchRate === null
        ? 'no defect-labelled image to measure it on'
        : `${pct(r.catchRate)} (${r.caught} of ${r.defectCount} ${basisWords(r.defectBasis, 'defect')} above it${interval(r.catchInterval)})`,
    ]);
    if (r.defectsPicked)
      rateRows.push([
        'Not counted',
        `${r.defectsPicked} defects decided from an earlier model's queue: the easiest to find, and no longer among the images to inspect`,
      ]);
    if (r.thinEvidence) rateRows.push(['Caution', r.thinEvidence]);
  }
  y = keyValues(doc, rateRows, x, y);

  y += 10;
  doc.font('Helvetica-Bold').fontSize(13).fillColor(COLORS.text).text('Score histogram', x, y);
  y = doc.y + 10;
  if (c.inspected === 0) {
    doc
      .font('Helvetica-Bold')
      .fontSize(14)
      .fillColor(COLORS.defect)
      .text('This batch has no images: nothing was inspected.', x, y + 10);
  } else if (!m.histogram) {
    doc
      .font('Helvetica')
      .fontSize(11)
      .fillColor(COLORS.muted)
      .text('No image of this batch has a score yet: score the batch to see the histogram.', x, y);
  } else {
    drawHistogram(
      doc,
      m.histogram,
      m.threshold === null ? null : toScale(m.threshold, m.scale),
      x,
      y,
      CONTENT_W,
      150,
    );
  }
}

/** "Page n of N" at the foot of the current page (the bottom margin lifted so no page is added). */
function pageFooter(doc: PDFKit.PDFDocument, page: number, total: number): void {
  const bottom = doc.page.margins.bottom;
  doc.page.margins.bottom = 0;
  doc
    .font('Helvetica')
    .fontSize(8)
    .fillColor(COLORS.muted)
    .text(`Page ${page} of ${total}`, PAGE.margin, PAGE.h - PAGE.margin + 14, {
      width: CONTENT_W,
      align: 'right',
      lineBreak: false,
    });
  doc.page.margins.bottom = bottom;
}

const SIGN_OFF_H = 120;

/** What an inspection report needs to be signed: who, when, what was decided. */
function drawSignOff(doc: PDFKit.PDFDocument, y: number): void {
  const x = PAGE.margin;
  doc.font('Helvetica-Bold').fontSize(13).fillColor(COLORS.text).text('Sign-off', x, y);
  let ly = doc.y + 10;
  doc.font('Helvetica').fontSize(10).fillColor(COLORS.text);
  for (const field of ['Inspector', 'Date', 'Signature']) {
    doc.text(field, x, ly, { lineBreak: false });
    doc
      .lineWidth(0.5)
      .moveTo(x + 90, ly + 10)
      .lineTo(x + 330, ly + 10)
      .stroke('#888888');
    ly += 22;
  }
  doc.text('Decision', x, ly, { lineBreak: false });
  let bx = x + 90;
  for (const d of ['batch accepted', 'batch rejected', 'held for review']) {
    doc.lineWidth(0.7).rect(bx, ly, 9, 9).stroke('#444444');
    doc.text(d, bx + 14, ly, { lineBreak: false });
    bx += 120;
  }
}

function pageHeader(doc: PDFKit.PDFDocument, m: ReportMeta, title: string): number {
  doc
    .font('Helvetica')
    .fontSize(8)
    .fillColor(COLORS.muted)
    .text(
      pdfText(`${m.projectName} - ${m.batch ?? 'all images'} - ${m.date.toISOString().slice(0, 10)}`),
      PAGE.margin,
      PAGE.margin - 18,
      { width: CONTENT_W, lineBreak: false },
    );
  doc.font('Helvetica-Bold').fontSize(13).fillColor(COLORS.text).text(title, PAGE.margin, PAGE.margin);
  return doc.y + 8;
}

function drawPicture(
  doc: PDFKit.PDFDocument,
  jpeg: Buffer | null,
  x: number,
  y: number,
  caption: string,
  missing: string,
): void {
  if (jpeg) {
    doc.image(jpeg, x, y, { fit: [IMG, IMG], align: 'center', valign: 'center' });
  } else {
    doc.rect(x, y, IMG, IMG).fill('#eeeeee');
    doc
      .fillColor(COLORS.muted)
      .fontSize(8)
      .text(missing, x + 6, y + IMG / 2 - 6, { width: IMG - 12, align: 'center' });
  }
  doc
    .font('Helvetica')
    .fillColor(COLORS.muted)
    .fontSize(7)
    .text(caption, x, y + IMG + 2, { width: IMG, align: 'center', lineBreak: false });
}

function drawFlaggedRow(
  doc: PDFKit.PDFDocument,
  row: ReportRow,
  rank: number,
  pics: { thumb: Buffer | null; overlay: Buffer | null },
  y: number,
  scale: ScoreScale | null,
): void {
  const x = PAGE.margin;
  drawPicture(doc, pics.thumb, x, y, 'image', row.status === 'missing' ? 'image file missing' : 'no picture');
  drawPicture(doc, pics.overlay, x + IMG + 10, y, 'heatmap overlay', 'no heatmap');
  const tx = x + 2 * IMG + 24;
  const tw = PAGE.w - PAGE.margin - tx;
  doc
    .font('Helvetica-Bold')
    .fontSize(10)
    .fillColor(COLORS.text)
    .text(pdfText(`${rank}. ${row.name}`), tx, y, { width: tw, lineBreak: false, ellipsis: true });
  doc
    .font('Helvetica')
    .fontSize(7)
    .fillColor(COLORS.muted)
    .text(pdfText(row.path), tx, y + 13, { width: tw, height: 18, ellipsis: true });
  doc.font('Helvetica').fontSize(10).fillColor(COLORS.text);
  doc.text(`score ${fmt(row.total === null ? null : toScale(row.total, scale), 4)}`, tx, y + 34, {
    lineBreak: false,
  });
  // A class named like the label itself ("defect") says nothing more.
  const label =
    row.label === null
      ? 'unlabelled'
      : row.label === 'defect'
        ? `defect${row.className && row.className !== 'defect' ? ` (${row.className})` : ''}`
        : 'good';
  doc
    .fillColor(row.label === 'defect' ? COLORS.defect : row.label === 'good' ? COLORS.good : COLORS.muted)
    .text(pdfText(`label: ${label}`), tx + 110, y + 34, { lineBreak: false });

  // On the score scale: each head as it enters the total, over the scale's unit.
  const contrib = contributions(row.perHead ?? {}).map(
    ([h, v]) => [h, v / (scale?.unit ?? 1)] as [string, number],
  );
  const barScale = Math.max(1e-9, ...contrib.map(([, v]) => Math.abs(v)));
  const labelW = 78;
  const barW = tw - labelW - 48;
  const zero = tx + labelW + barW / 2;
  let by = y + 52;
  for (const [name, v] of contrib) {
    doc.fillColor(COLORS.text).fontSize(8).text(name, tx, by, { width: labelW, lineBreak: false });
    const len = (Math.abs(v) / barScale) * (barW / 2);
    doc
      .rect(v >= 0 ? zero : zero - len, by + 1, Math.max(0.5, len), 7)
      .fill(v >= 0 ? COLORS.defect : COLORS.good);
    doc
      .fillColor(COLORS.muted)
      .fontSize(7)
      .text(fmt(v), tx + labelW + barW + 4, by + 1, { width: 44, lineBreak: false });
    by += 12;
  }
  if (contrib.length) {
    doc
      .lineWidth(0.5)
      .moveTo(zero, y + 50)
      .lineTo(zero, by)
      .stroke('#999999');
  }
  doc
    .lineWidth(0.5)
    .moveTo(PAGE.margin, y + ROW_H - 6)
    .lineTo(PAGE.w - PAGE.margin, y + ROW_H - 6)
    .stroke('#dddddd');
}

/**
 * Writes the PDF. `onFlagged(done, total)` reports progress over the flagged images, the
 * part whose cost grows with the batch.
 */
export async function writeReportPdf(
  q: BatchQuery,
  meta: ReportMeta,
  images: ReportImages,
  file: string,
  onFlagged: (done: number, total: number) => void = () => {},
): Promise<{ flagged: number; pages: number }> {
  const doc = new PDFDocument({
    size: 'A4',
    margin: PAGE.margin,
    autoFirstPage: true,
    info: {
      Title: pdfText(`Inspection report: ${meta.projectName}${meta.batch ? ` / ${meta.batch}` : ''}`),
      Author: 'Swan Inspector',
      Subject: 'Inspection report',
      CreationDate: meta.date,
    },
  });
  return writeThroughStream(file, async ({ out, watch }) => {
    watch(doc);
    doc.pipe(out);
    let pages = 1;
    const ids = flaggedIds(q);
    // Pages are written as they fill (memory stays at one page), so the count comes first:
    // the summary, the flagged rows at a fixed number per page, the sign-off where it fits.
    const top = PAGE.margin + doc.font('Helvetica-Bold').fontSize(13).currentLineHeight(true) + 8;
    const perPage = Math.max(1, Math.floor((PAGE.h - PAGE.margin - top) / ROW_H));
    const rowPages = Math.max(1, Math.ceil(ids.length / perPage));
    const lastRows = ids.length - (rowPages - 1) * perPage;
    const endY = top + (ids.length === 0 ? 30 : lastRows * ROW_H);
    const signOffPage = endY + 10 + SIGN_OFF_H > PAGE.h - PAGE.margin;
    const totalPages = 1 + rowPages + (signOffPage ? 1 : 0);
    const footer = (): void => pageFooter(doc, pages, totalPages);
    drawSummary(doc, meta);
    footer();

    onFlagged(0, ids.length);
    doc.addPage();
    pages++;
    let y = pageHeader(doc, meta, `Flagged images (${ids.length})`);
    let onPage = 0;
    if (ids.length === 0) {
      doc
        .font('Helvetica')
        .fontSize(11)
        .fillColor(COLORS.muted)
        .text(
          meta.threshold === null
            ? 'No threshold is set, so no image is flagged.'
            : meta.counts.inspected === 0
              ? 'This batch has no images: nothing was inspected, nothing is flagged.'
              : 'No image of this batch scored above the threshold.',
          PAGE.margin,
          y,
        );
    }
    for (let start = 0; start < ids.length; start += FLAGGED_CHUNK) {
      const rows = rowsById(q, ids.slice(start, start + FLAGGED_CHUNK));
      const pics = await Promise.all(
        rows.map(async (r) => {
          const thumb = await images.thumbnail(r).catch(() => null);
          const overlay = await images.overlay(r, thumb).catch(() => null);
          return { thumb, overlay };
        }),
      );
      rows.forEach((r, k) => {
        if (onPage === perPage) {
          footer();
          doc.addPage();
          pages++;
          onPage = 0;
          y = pageHeader(doc, meta, 'Flagged images (continued)');
        }
        onPage++;
        drawFlaggedRow(doc, r, start + k + 1, pics[k], y, meta.scale);
        y += ROW_H;
      });
      onFlagged(Math.min(ids.length, start + rows.length), ids.length);
    }
    if (ids.length === 0) y += 30;
    if (signOffPage) {
      footer();
      doc.addPage();
      pages++;
      y = pageHeader(doc, meta, 'Sign-off');
    }
    drawSignOff(doc, y + 10);
    footer();
    doc.end();
    return { flagged: ids.length, pages };
  });
}
