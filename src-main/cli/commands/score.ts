import { readdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { stringify } from 'csv-stringify/sync';
import { openScorer, type HeadName } from '../../engine';
import { CliError } from '../cli-error';
import { progressBar } from '../progress';

const IMAGE_EXT = /\.(png|jpe?g|bmp|tiff?|webp)$/i;

async function expandPaths(inputs: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const input of inputs) {
    const p = resolve(input);
    const st = await stat(p).catch(() => null);
    if (!st) throw new CliError(`No such file or folder: ${input}`);
    if (st.isDirectory()) {
      const entries = await readdir(p, { recursive: true, withFileTypes: true });
      for (const e of entries)
        if (e.isFile() && IMAGE_EXT.test(e.name)) out.push(join(e.parentPath ?? p, e.name));
    } else out.push(p);
  }
  return out.sort();
}

export async function runScore(
  paths: string[],
  opts: { model: string; csv?: string; backbone?: string },
): Promise<void> {
  const files = await expandPaths(paths);
  if (files.length === 0) throw new CliError('No image files to score.');
  const scorer = await openScorer(opts.model, opts.backbone ? { expectBackbone: opts.backbone } : {});
  const bar = progressBar('score');
  const t0 = performance.now();
  try {
    const results = await scorer.score(files, files.length > 20 ? (d, n) => bar.update(d, n) : undefined);
    bar.stop();
    const seconds = (performance.now() - t0) / 1000;
    const heads = [
      ...new Set(results.flatMap((r) => (r.ok ? Object.keys(r.score.perHead) : []))),
    ] as HeadName[];
    const rows = results.map((r) =>
      r.ok
        ? [r.path, r.score.total.toFixed(6), ...heads.map((h) => (r.score.perHead[h] ?? 0).toFixed(6)), '']
        : [r.path, '', ...heads.map(() => ''), r.error],
    );
    const header = ['path', 'score', ...heads, 'error'];
    if (opts.csv) await writeFile(opts.csv, stringify([header, ...rows]));
    else process.stdout.write(stringify([header, ...rows]));
    const failed = results.filter((r) => !r.ok);
    for (const f of failed) if (!f.ok) process.stderr.write(`warning: ${f.error}\n`);
    process.stderr.write(
      `backend: ${scorer.backend}\nscored ${results.length - failed.length} images in ${seconds.toFixed(2)} s ` +
        `(${((results.length - failed.length) / seconds).toFixed(1)} images/s)${opts.csv ? ` -> ${opts.csv}` : ''}\n`,
    );
  } finally {
    await scorer.close();
  }
}
