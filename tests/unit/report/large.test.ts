import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../../src-main/cli/main';
import { exportReport } from '../../../src-main/report/export';
import { ProjectStore } from '../../../src-main/project/store';
import { tempDir } from '../app/helpers';
import { buildProject, tinyJpeg, type SyntheticImage } from './helpers';

const N = 5000;
const THRESHOLD = 0.94;

describe('a 5,000-image batch', () => {
  let tmp: ReturnType<typeof tempDir>;
  let project: string;
  let flaggedExpected: number;
  beforeAll(async () => {
    tmp = tempDir('swan-report-big-');
    // Deterministic scores spread over [0, 1): about 6 % above the threshold.
    const images: SyntheticImage[] = Array.from({ length: N }, (_, k) => ({
      name: `part-${String(k).padStart(5, '0')}.jpg`,
      batch: k < N ? 'night shift' : 'x',
      total: ((k * 7919) % N) / N,
      label: k % 50 === 0 ? 'good' : k % 97 === 0 ? 'defect' : undefined,
    }));
    flaggedExpected = images.filter((i) => (i.total as number) > THRESHOLD).length;
    const built = await buildProject(tmp.dir, images, { threshold: THRESHOLD });
    // Thumbnails for the flagged images only (256 px, as the app makes them).
    const thumb = await tinyJpeg(140, 256);
    images.forEach((img, k) => {
      if ((img.total as number) > THRESHOLD)
        writeFileSync(join(built.store.thumbsDir, `sha-${k}.jpg`), thumb);
    });
    built.store.close();
    project = join(tmp.dir, 'project');
  });
  afterAll(() => tmp.cleanup());

  it('exports PDF and CSV with progress and bounded memory', async () => {
    const store = ProjectStore.open(project);
    const progress: { format: string; done: number; total: number }[] = [];
    global.gc?.();
    const base = process.memoryUsage();
    let peakHeap = base.heapUsed;
    let peakRss = base.rss;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peakHeap = Math.max(peakHeap, m.heapUsed);
      peakRss = Math.max(peakRss, m.rss);
    }, 5);
    const t0 = performance.now();
    const r = await exportReport(
      store,
      { batch: 'night shift', format: 'both', outDir: join(tmp.dir, 'out') },
      (p) => {
        progress.push(p);
        const m = process.memoryUsage();
        peakHeap = Math.max(peakHeap, m.heapUsed);
        peakRss = Math.max(peakRss, m.rss);
      },
    );
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    store.close();
    const pdfBytes = statSync(r.pdf!).size;
    const heapGrowthMb = (peakHeap - base.heapUsed) / 2 ** 20;
    console.log(
      `5,000-image report: ${seconds.toFixed(1)} s, flagged ${r.counts.flagged}, PDF ${(pdfBytes / 2 ** 20).toFixed(1)} MB, ` +
        `CSV ${(statSync(r.csv!).size / 2 ** 20).toFixed(2)} MB, peak heap ${(peakHeap / 2 ** 20).toFixed(1)} MB (start ${(base.heapUsed / 2 ** 20).toFixed(1)} MB), ` +
        `peak rss +${((peakRss - base.rss) / 2 ** 20).toFixed(1)} MB`,
    );
    expect(r.counts.inspected).toBe(N);
    expect(r.counts.flagged).toBe(flaggedExpected);
    // Progress: the CSV a page at a time, the PDF a chunk of flagged images at a time, never backwards.
    const csv = progress.filter((p) => p.format === 'csv');
    const pdf = progress.filter((p) => p.format === 'pdf');
    expect(csv.length).toBeGreaterThanOrEqual(N / 500);
    expect(csv.at(-1)).toMatchObject({ done: N });
    expect(pdf.length).toBeGreaterThan(flaggedExpected / 8);
    expect(pdf.at(-1)).toEqual({ format: 'pdf', done: flaggedExpected, total: flaggedExpected });
    for (const list of [csv, pdf])
      for (let i = 1; i < list.length; i++) expect(list[i].done).toBeGreaterThanOrEqual(list[i - 1].done);
    // Memory: the report is never held whole. The bound is loose for GC timing; holding every
    // flagged picture and the PDF would not fit it more than once.
    expect(heapGrowthMb).toBeLessThan(150);
    expect((peakRss - base.rss) / 2 ** 20).toBeLessThan(300);
    const lines = readFileSync(r.csv!, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(N + 1);
    const info = execFileSync('pdfinfo', [r.pdf!], { encoding: 'utf8' });
    const pages = Number(/Pages:\s+(\d+)/.exec(info)![1]);
    // Five flagged images per page after the summary page.
    expect(pages).toBe(1 + Math.ceil(flaggedExpected / 5));
    const last = execFileSync('pdftotext', ['-f', String(pages), '-l', String(pages), r.pdf!, '-'], {
      encoding: 'utf8',
    });
    expect(last).toContain(`${flaggedExpected}. part-`);
  });

  it('swan report --project DIR --batch NAME --out DIR writes both files', async () => {
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    let code: number;
    let printed = '';
    try {
      code = await main([
        'report',
        '--project',
        project,
        '--batch',
        'night shift',
        '--out',
        join(tmp.dir, 'cli'),
        '--format',
        'csv',
      ]);
      printed = out.mock.calls.map((c) => String(c[0])).join('');
    } finally {
      out.mockRestore();
    }
    expect(code).toBe(0);
    expect(printed).toContain(`batch "night shift": ${N} inspected, ${N} scored, ${flaggedExpected} flagged`);
    const file = printed.trim().split('\n').at(-1)!;
    expect(file).toMatch(/\.csv$/);
    expect(readFileSync(file, 'utf8').split('\n')[0]).toContain('path,name,batch');
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(['report', '--project', join(tmp.dir, 'nope'), '--out', tmp.dir])).toBe(2);
      expect(err.mock.calls.map((c) => String(c[0])).join('')).toMatch(
        /swan: .*is not a Swan Inspector project/,
      );
    } finally {
      err.mockRestore();
    }
  });
});
