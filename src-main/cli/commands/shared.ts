import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { resolveDataset, defaultDataRoot } from '../../data/datasets';
import type { Dataset } from '../../data/types';
import { DEFAULT_SETTINGS } from '../../engine/settings';
import type { TrainSettings } from '../../engine/types';
import { CliError } from '../cli-error';

export interface DataOptions {
  dataRoot?: string;
  normal?: string;
}

export async function openDataset(spec: string, opts: DataOptions): Promise<Dataset> {
  const ds = await resolveDataset(spec, {
    dataRoot: opts.dataRoot ?? defaultDataRoot(),
    normal: opts.normal,
  });
  for (const w of ds.warnings) process.stderr.write(`warning: ${w}\n`);
  return ds;
}

export function fmt(x: number | undefined, digits = 3): string {
  return x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits);
}

const OPTIONAL_SETTING_KEYS = [
  'heads',
  'combine',
  'residualReduce',
  'residualWidth',
  'normalityWidth',
  'augment',
  'knnPatch',
  'knnWeight',
  'gaussianHead',
  'gaussianWeight',
  'globalHead',
  'globalWeight',
  'matchedNormals',
  'patchHidden',
  'outlierDir',
  'fineTuneFrom',
];

/** `--set key=value` pairs (values in JSON) as settings overrides, for ablations. */
export function parseSettingOverrides(pairs: string[] | undefined): Partial<TrainSettings> {
  const out: Record<string, unknown> = {};
  const known = new Set([...Object.keys(DEFAULT_SETTINGS), ...OPTIONAL_SETTING_KEYS]);
  for (const pair of pairs ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliError(`--set expects key=value, got "${pair}".`);
    const key = pair.slice(0, eq);
    if (!known.has(key))
      throw new CliError(`--set: unknown setting "${key}" (known: ${[...known].join(', ')}).`);
    const raw = pair.slice(eq + 1);
    try {
      out[key] = JSON.parse(raw);
    } catch {
      out[key] = raw;
    }
  }
  return out as Partial<TrainSettings>;
}

/** `--outliers DIR`: outlier exposure (pseudo anomalies are images of another data set). */
export function outlierSettings(dir: string | undefined): Partial<TrainSettings> {
  if (dir === undefined) return {};
  const abs = resolve(dir);
  let isDir = false;
  try {
    isDir = statSync(abs).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) throw new CliError(`--outliers: ${abs} is not a folder (expected images of another data set).`);
  return { pseudo: 'outlier', outlierDir: abs };
}
