import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiService } from '../../../src-main/api/service';
import { tempDir } from '../app/helpers';
import { buildProject, type SyntheticImage } from './helpers';

const ARTIFACTS = resolve('test-results/report');

function pdfText(file: string): string {
  return execFileSync('pdftotext', ['-layout', file, '-'], { encoding: 'utf8' });
}

function renderPage(file: string, page: number, outBase: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  execFileSync('pdftoppm', [
    '-png',
    '-r',
    '80',
    '-f',
    String(page),
    '-l',
    String(page),
    '-singlefile',
    file,
    join(ARTIFACTS, outBase),
  ]);
  return join(ARTIFACTS, `${outBase}.png`);
}

function pageCount(file: string): number {
  const info = execFileSync('pdfinfo', [file], { encoding: 'utf8' });
  return Number(/Pages:\s+(\d+)/.exec(info)![1]);
}

const lot: SyntheticImage[] = [
  // Flagged (threshold 0.5): two known defects, one unlabelled, one good false alarm.
  {
    name: 'bracket-017.jpg',
    batch: 'lot 7',
    label: 'defect',
    cls: 'scratch',
    total: 0.93,
    file: true,
    thumb: true,
    shade: 200,
  },
  { name: 'bracket-004.jpg', batch: 'lot 7', total: 0.81, file: true, shade: 180 },
  {
    name: 'bracket-022.jpg',
    batch: 'lot 7',
    label: 'defect',
    cls: 'crack',
    total: 0.66,
    file: true,
    thumb: true,
    shade: 170,
  },
  {
    name: 'bracket-009.jpg',
    batch: 'lot 7',
    label: 'good',
    total: 0.55,
    file: true,
    thumb: true,
    shade: 150,
  },
  // Passing.
  { name: 'bracket-001.jpg', batch: 'lot 7', label: 'good', total: 0.2, file: true },
  { name: 'bracket-002.jpg', batch: 'lot 7', label: 'good', total: 0.31, file: true },
  { name: 'bracket-003.jpg', batch: 'lot 7', label: 'defect', cls: 'crack', total: 0.45, file: true },
  { name: 'bracket-005.jpg', batch: 'lot 7', total: 0.12, file: true },
  // Not scored, and a missing file.
  { name: 'bracket-006.jpg', batch: 'lot 7', total: null, file: true },
  { name: 'gone-007.jpg', batch: 'lot 7', total: 0.4 },
  // Another batch: not in the lot-7 report.
  { name: 'other-1.jpg', batch: 'lot 8', label: 'good', total: 0.99, file: true },
];

describe('inspection report', () => {
  let tmp: ReturnType<typeof tempDir>;
  let api: ApiService;
  beforeEach(() => {
    tmp = tempDir('swan-report-');
    api = new ApiService({ projectsRoot: join(tmp.dir, 'projects') });
  });
  afterEach(async () => {
    await api.close();
    tmp.cleanup();
  });

  async function open(images: SyntheticImage[], opts: Parameters<typeof buildProject>[2] = {}) {
    const built = await buildProject(tmp.dir, images, opts);
    built.store.close();
    await api.invoke('project.open', { path: join(tmp.dir, 'project') });
    return built;
  }

  it('writes a PDF (summary, histogram, flagged images) and a CSV of every image of the batch', async () => {
    const built = await buildProject(tmp.dir, lot, {});
    // Trained on other images: every labelled image of the lot is held out.
    built.store.db.prepare("UPDATE models SET label_ids = '[]' WHERE id = ?").run(built.modelId);
    built.store.close();
    await api.invoke('project.open', { path: join(tmp.dir, 'project') });
    const { ids } = built;
    // The threshold from a catch target: at least 2 of the 3 known defects caught.
    const t = await api.invoke('threshold.set', { catchRate: 0.66 });
    expect(t.threshold).toBe(0.55);
    expect(t.source).toEqual({ kind: 'catchRate', target: 0.66 });
    const progress: { format: string; done: number; total: number }[] = [];
    api.on((e) => {
      if (e.event === 'report.progress') progress.push(e.payload);
    });
    const out = join(tmp.dir, 'reports', 'new-folder');
    const r = await api.invoke('report.export', { batch: 'lot 7', format: 'both', outDir: out });
    expect(r.counts).toEqual({
      inspected: 10,
      scored: 9,
      flagged: 3,
      labelled: 6,
      good: 3,
      defect: 3,
      missing: 1,
    });
    expect(r.modelVersion).toBe(1);
    expect(r.threshold).toBe(0.55);
    expect(readdirSync(out).sort()).toEqual([r.csv!.split('/').pop(), r.pdf!.split('/').pop()].sort());
    expect(readFileSync(r.pdf!).subarray(0, 5).toString()).toBe('%PDF-');
    expect(progress.some((p) => p.format === 'pdf' && p.done === 3 && p.total === 3)).toBe(true);
    expect(progress.some((p) => p.format === 'csv' && p.done === 10)).toBe(true);

    const text = pdfText(r.pdf!);
    for (const s of [
      'Inspection report',
      'Bracket line 3',
      'lot 7',
      'version 1',
      'aucRoc 0.9310',
      'Inspected',
      '10 images (1 file missing)',
      'Flagged',
      'from a target of at least 66 % of known defects caught',
      '(raw model score 0.550000)',
      '0 % (0 of 3 good images not trained on above it',
      '66.7 % (2 of 3 defect images not trained on above it',
      'Page 1 of 2',
      'Page 2 of 2',
      'Sign-off',
      'Inspector',
      'batch accepted',
      'Score histogram',
      'Flagged images (3)',
      '1. bracket-017.jpg',
      '2. bracket-004.jpg',
      '3. bracket-022.jpg',
      'label: defect (scratch)',
      'minus normality',
      'heatmap overlay',
    ]) {
      expect(text, s).toContain(s);
    }
    // Exactly at the threshold passes; the other batch is left out.
    expect(text).not.toContain('bracket-009.jpg');
    expect(text).not.toContain('other-1.jpg');
    const page1 = renderPage(r.pdf!, 1, 'report-page1');
    const page2 = renderPage(r.pdf!, 2, 'report-page2');
    expect(statSync(page1).size).toBeGreaterThan(5000);
    expect(statSync(page2).size).toBeGreaterThan(5000);

    const rows = parse(readFileSync(r.csv!), { columns: true }) as Record<string, string>[];
    expect(rows).toHaveLength(10);
    expect(Object.keys(rows[0])).toEqual([
      'id',
      'path',
      'name',
      'batch',
      'status',
      'score',
      'score_baseline',
      'head_seen',
      'head_pseudo',
      'head_residual',
      'head_normality',
      'head_knn',
      'head_gaussian',
      'head_global',
      'decision',
      'threshold',
      'label',
      'class',
      'rate_basis',
      'rate_score',
      'rate_outcome',
      'score_raw',
      'threshold_raw',
    ]);
    const byName = new Map(rows.map((row) => [row.name, row]));
    expect(byName.get('bracket-017.jpg')).toMatchObject({
      id: String(ids[0]),
      score_raw: '0.93',
      decision: 'flagged',
      label: 'defect',
      class: 'scratch',
      threshold_raw: '0.55',
      rate_basis: 'held-out',
      rate_outcome: 'caught',
    });
    // Every scored row adds up: score = baseline + the head columns (normality enters negated).
    for (const row of rows.filter((x) => x.score !== '')) {
      const heads = Object.keys(row).filter((k) => k.startsWith('head_') && row[k] !== '');
      const sum = Number(row.score_baseline) + heads.reduce((a, k) => a + Number(row[k]), 0);
      if (heads.length) expect(sum, row.name).toBeCloseTo(Number(row.score), 9);
    }
    expect(byName.get('bracket-009.jpg')).toMatchObject({ decision: 'pass', label: 'good' });
    expect(byName.get('bracket-006.jpg')).toMatchObject({ decision: 'unscored', score: '', head_seen: '' });
    expect(byName.get('gone-007.jpg')).toMatchObject({
      status: 'missing',
      decision: 'pass',
      label: 'unlabelled',
    });
    expect(rows.filter((row) => row.decision === 'flagged')).toHaveLength(3);
  });

  it('an empty batch gives a valid PDF that says so, and a CSV with only the header', async () => {
    await open([]);
    const r = await api.invoke('report.export', { format: 'both', outDir: join(tmp.dir, 'out') });
    expect(r.counts.inspected).toBe(0);
    expect(pageCount(r.pdf!)).toBe(2);
    const text = pdfText(r.pdf!);
    expect(text).toContain('This batch has no images: nothing was inspected.');
    expect(text).toContain('Flagged images (0)');
    renderPage(r.pdf!, 1, 'report-empty-page1');
    expect(readFileSync(r.csv!, 'utf8').trim().split('\n')).toHaveLength(1);
    // A batch whose images were all removed is empty too.
    const gone = await api.invoke('report.export', {
      batch: 'lot 99',
      format: 'pdf',
      outDir: join(tmp.dir, 'out'),
    });
    expect(pdfText(gone.pdf!)).toContain('This batch has no images');
  });

  it('a project without a model still reports, and says no model scored it', async () => {
    await open(lot.slice(0, 3), { model: false });
    const r = await api.invoke('report.export', { format: 'pdf', outDir: join(tmp.dir, 'out') });
    expect(r.modelId).toBeNull();
    const text = pdfText(r.pdf!);
    expect(text).toContain('none: no model has scored these images');
    expect(text).toContain('No threshold is set, so no image is flagged.');
  });

  it('a folder that cannot be written gives a clear error and writes nothing (also as root)', async () => {
    await open(lot.slice(0, 2));
    const file = join(tmp.dir, 'a-file.txt');
    writeFileSync(file, 'not a folder');
    const cases: [string, RegExp][] = [
      [file, /it is a file, not a folder/],
      [join(file, 'reports'), /part of the path is a file, not a folder/],
      // sysfs refuses new entries even to root.
      ['/sys/swan-report-test', /permission denied \(EPERM\)|read-only/],
      // Node's recursive mkdir would spin forever here; the export must fail instead.
      ['/proc/swan-report-test/x', /cannot be created there \(ENOENT\)/],
    ];
    for (const [outDir, msg] of cases) {
      const r = await api.call('report.export', { format: 'both', outDir });
      expect(r.ok, outDir).toBe(false);
      if (!r.ok) {
        expect(r.error.code).toBe('read_only');
        expect(r.error.message).toMatch(/^Cannot write the report to /);
        expect(r.error.message).toMatch(msg);
      }
    }
    expect(readFileSync(file, 'utf8')).toBe('not a folder');
    expect(existsSync('/sys/swan-report-test')).toBe(false);
  });

  it('validates its input', async () => {
    await open([]);
    const r = await api.call('report.export', { format: 'docx', outDir: tmp.dir });
    expect(r).toMatchObject({ ok: false, error: { code: 'invalid_input' } });
    const r2 = await api.call('report.export', { format: 'pdf' });
    expect(r2).toMatchObject({
      ok: false,
      error: { code: 'invalid_input', message: expect.stringMatching(/outDir/) },
    });
  });
});
