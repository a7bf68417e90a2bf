/** Turns a data set spec ("headct", "mvtec:DIR", ...) into a loaded Dataset. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadCsv, loadElpv, loadFolders, loadHeadct, loadKolektorSdd, loadMvtec } from './adapters';
import { findPackageRoot } from '../engine/util/package-root';
import { DataError } from './data-error';
import type { Dataset } from './types';

export const DATASET_SPEC_FORMS: readonly string[] = [
  'headct',
  'elpv',
  'kolektorsdd (or sdd)',
  'bottle',
  'mvtec:DIR',
  'folders:DIR (with a normal class name)',
  'csv:FILE',
];

/** The named data sets and their folders under the data root. */
export const NAMED_DATASETS: readonly { name: string; folder: string }[] = [
  { name: 'headct', folder: 'headct' },
  { name: 'elpv', folder: 'elpv' },
  { name: 'kolektorsdd', folder: 'kolektorsdd' },
  { name: 'bottle', folder: 'mvtec_bottle' },
];

/** Names of the named data sets whose folder exists under dataRoot, in NAMED_DATASETS order. */
export function namedDatasetsIn(dataRoot: string): string[] {
  return NAMED_DATASETS.filter((d) => existsSync(join(dataRoot, d.folder))).map((d) => d.name);
}

export interface ResolveOptions {
  /** Folder holding the named data sets (headct/, elpv/, kolektorsdd/, mvtec_bottle/). */
  dataRoot: string;
  /** Name of the normal class folder, for folders:DIR. */
  normal?: string;
}

export async function resolveDataset(spec: string, opts: ResolveOptions): Promise<Dataset> {
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const arg = colon < 0 ? '' : spec.slice(colon + 1);
  if (colon < 0 && kind === 'headct') return loadHeadct(join(opts.dataRoot, 'headct'));
  if (colon < 0 && kind === 'elpv') return loadElpv(join(opts.dataRoot, 'elpv'));
  if (colon < 0 && (kind === 'kolektorsdd' || kind === 'sdd'))
    return loadKolektorSdd(join(opts.dataRoot, 'kolektorsdd'));
  if (colon < 0 && kind === 'bottle')
    return { ...(await loadMvtec(join(opts.dataRoot, 'mvtec_bottle'))), name: 'bottle' };
  if (colon >= 0 && arg) {
    if (kind === 'mvtec') return loadMvtec(arg);
    if (kind === 'csv') return loadCsv(arg);
    if (kind === 'folders') {
      if (!opts.normal) throw new DataError(`${spec}: folders:DIR needs the name of the normal class folder`);
      return loadFolders(arg, opts.normal);
    }
  }
  throw new DataError(`unknown data set "${spec}": expected one of ${DATASET_SPEC_FORMS.join(', ')}`);
}

/** SWAN_DATA_ROOT, else ../shared/datasets beside the repository. */
export function defaultDataRoot(): string {
  const fromEnv = process.env.SWAN_DATA_ROOT;
  if (fromEnv) return resolve(fromEnv);
  const repo = findPackageRoot() ?? process.cwd();
  return resolve(repo, '..', 'shared', 'datasets');
}
