import { resolveDataset, defaultDataRoot } from '../../data/datasets';
import type { Dataset } from '../../data/types';

export interface DataOptions {
  dataRoot?: string;
  normal?: string;
}

export async function openDataset(spec: string, opts: DataOptions): Promise<Dataset> {
  const ds = await resolveDataset(spec, { dataRoot: opts.dataRoot ?? defaultDataRoot(), normal: opts.normal });
  for (const w of ds.warnings) process.stderr.write(`warning: ${w}\n`);
  return ds;
}

export function fmt(x: number | undefined, digits = 3): string {
  return x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits);
}
