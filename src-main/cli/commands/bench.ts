import { writeFile } from 'node:fs/promises';
import type { Setting } from '../../data/types';
import { runBenchmark, type BenchResult } from '../bench/harness';
import type { Method } from '../bench/methods';
import { publishedAuc } from '../bench/paper';
import { CliError } from '../cli-error';
import { progressBar } from '../progress';
import { fmt, openDataset, outlierSettings, parseSettingOverrides, type DataOptions } from './shared';

interface BenchCliOptions extends DataOptions {
  dataset: string;
  setting: Setting;
  shots: number;
  seeds: number;
  seedStart: number;
  input: string;
  square?: boolean;
  backbone: string;
  method: Method;
  baseline?: Method;
  knn: boolean;
  featureLayer?: string;
  set?: string[];
  outliers?: string;
  json?: string;
  dumpParts?: boolean;
}

export async function runBench(opts: BenchCliOptions): Promise<void> {
  if (opts.dumpParts && !opts.json)
    throw new CliError('--dump-parts needs --json <file>: the parts are written there.');
  const ds = await openDataset(opts.dataset, opts);
  const anomalies = ds.items.filter((it) => it.label === 1);
  if (opts.setting === 'hard') {
    for (const c of ds.anomalyClasses) {
      const n = anomalies.filter((it) => it.cls === c).length;
      if (n < opts.shots)
        throw new CliError(`Class ${c} has ${n} anomalies, fewer than --shots ${opts.shots}.`);
    }
    if (ds.anomalyClasses.length < 2)
      throw new CliError('The hard setting needs at least two anomaly classes.');
  } else if (anomalies.length < opts.shots) {
    throw new CliError(`${ds.name} has ${anomalies.length} anomalies, fewer than --shots ${opts.shots}.`);
  }
  let bar = progressBar('features');
  let label = 'features';
  const result = await runBenchmark({
    dataset: ds,
    setting: opts.setting,
    shots: opts.shots,
    seeds: opts.seeds,
    seedStart: opts.seedStart,
    inputSize: Number(opts.input),
    square: opts.square === true,
    backbone: opts.backbone,
    method: opts.baseline ?? opts.method,
    featureLayer: opts.featureLayer,
    settings: {
      ...(opts.knn ? {} : { knnHead: false }),
      ...parseSettingOverrides(opts.set),
      ...outlierSettings(opts.outliers),
    },
    keepParts: opts.dumpParts === true,
    log: (line) => process.stderr.write(`${line}\n`),
    onProgress: (l, d, n) => {
      if (l !== label) {
        bar.stop();
        bar = progressBar(l);
        label = l;
      }
      bar.update(d, n);
      if (d === n) bar.stop();
    },
  });
  bar.stop();
  process.stdout.write(formatTable(result));
  if (opts.json) {
    await writeFile(opts.json, JSON.stringify(result, null, 2));
  }
}

export function formatTable(r: BenchResult): string {
  const pm = (s: { mean: number; std: number }) => `${fmt(s.mean)} ± ${fmt(s.std)}`;
  const pub = publishedAuc(r.dataset, r.setting, r.shots);
  const lines = [
    `${r.dataset} · ${r.setting} · ${r.shots}-shot · seeds ${r.seed_start}-${r.seed_start + r.seeds - 1} · ${r.label} · ${r.backend}`,
    '',
    `  AUC-ROC        ${pm(r.auc_roc)}    paper DRA ${fmt(pub.dra)}    best since (AHL) ${fmt(pub.ahl)}`,
    `  AP (AUC-PR)    ${pm(r.ap)}`,
  ];
  if (r.pixel_auc_roc) lines.push(`  pixel AUROC    ${pm(r.pixel_auc_roc)}`);
  const heads = Object.entries(r.per_head);
  if (heads.length) {
    lines.push('', '  AUC-ROC of each head alone:');
    for (const [h, s] of heads) lines.push(`    ${h.padEnd(12)} ${pm(s!)}`);
  }
  if (r.per_class.length) {
    lines.push('', '  per known class:');
    for (const c of r.per_class)
      lines.push(`    ${c.class.padEnd(12)} AUC-ROC ${pm(c.auc_roc)}   AP ${pm(c.ap)}`);
  }
  const s = r.seconds;
  lines.push(
    '',
    `  seconds: features ${s.features.toFixed(1)}, train ${s.train.toFixed(1)}, score ${s.score.toFixed(2)}, total ${s.total.toFixed(1)}`,
    '',
  );
  return lines.join('\n');
}
