/** Helpers shared by the data set adapters. */
import { access, readdir, readFile, stat } from 'node:fs/promises';
import { parse } from 'csv-parse/sync';
import { basename, extname, join } from 'node:path';
import { DataError } from '../data-error';
import { NORMAL_CLASS, type Dataset, type DatasetItem } from '../types';

/** Extensions sharp's bundled libvips decodes. BMP is not among them. */
export const IMAGE_EXTENSIONS: readonly string[] = [
  '.png',
  '.jpg',
  '.jpeg',
  '.webp',
  '.tif',
  '.tiff',
  '.gif',
  '.avif',
];

export function isImageName(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
}

export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

export async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

export async function requireDirectory(dir: string, expected: string): Promise<void> {
  if (!(await isDirectory(dir))) throw new DataError(`${dir}: folder not found (expected ${expected})`);
}

export async function requireFile(file: string, expected: string): Promise<void> {
  try {
    if ((await stat(file)).isFile()) return;
  } catch {
    // reported below
  }
  throw new DataError(`${file}: file not found (expected ${expected})`);
}

/** Sorted sub-folder names, hidden ones left out. */
export async function listSubfolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

/**
 * Image files directly in a folder, sorted so that splits do not depend on the order
 * the file system lists them. Other visible files come back as warnings, since a
 * folder of .bmp files silently read as empty would be baffling.
 */
export async function listImages(dir: string): Promise<{ images: string[]; warnings: string[] }> {
  const entries = await readdir(dir, { withFileTypes: true });
  const images: string[] = [];
  const warnings: string[] = [];
  for (const e of entries) {
    if (!e.isFile() || e.name.startsWith('.') || e.name === 'Thumbs.db') continue;
    const path = join(dir, e.name);
    if (isImageName(e.name)) images.push(path);
    else warnings.push(`${path}: skipped, not a supported image type (${IMAGE_EXTENSIONS.join(', ')})`);
  }
  images.sort();
  return { images, warnings };
}

/** Image files in a folder and every visible sub-folder below it, sorted (other files are ignored). */
export async function listImagesDeep(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && !e.name.startsWith('.') && isImageName(e.name))
    .map((e) => join(e.parentPath, e.name))
    .filter(
      (p) =>
        !p
          .slice(dir.length)
          .split(/[\\/]/)
          .some((part) => part.startsWith('.')),
    )
    .sort();
}

export function normalItem(path: string): DatasetItem {
  return { path, label: 0, cls: NORMAL_CLASS };
}

export function anomalyItem(path: string, cls: string): DatasetItem {
  return { path, label: 1, cls };
}

/** Assembles a Dataset, refusing one without a single image. */
export function makeDataset(
  name: string,
  root: string,
  items: DatasetItem[],
  warnings: string[],
  expected: string,
  fixedSplit?: Dataset['fixedSplit'],
): Dataset {
  if (items.length === 0) throw new DataError(`${root}: no images found (expected ${expected})`);
  const anomalyClasses = [...new Set(items.filter((i) => i.label === 1).map((i) => i.cls))].sort();
  const ds: Dataset = { name, root, items, anomalyClasses, warnings };
  if (fixedSplit) ds.fixedSplit = fixedSplit;
  return ds;
}

/** Drops listed files that do not exist, with a warning each. */
export async function keepExisting(
  listed: DatasetItem[],
  warnings: string[],
  source: string,
): Promise<DatasetItem[]> {
  const present = await Promise.all(listed.map((i) => fileExists(i.path)));
  const kept: DatasetItem[] = [];
  listed.forEach((item, k) => {
    if (present[k]) kept.push(item);
    else warnings.push(`${item.path}: listed in ${basename(source)} but missing, skipped`);
  });
  return kept;
}

/**
 * The rows of a labels CSV with a header (fields trimmed: headers may have a space after the
 * comma), refusing a file that does not parse or lacks one of the named columns.
 */
export async function readLabelRows(
  file: string,
  columns: readonly string[],
): Promise<Record<string, string>[]> {
  let rows: Record<string, string>[];
  try {
    rows = parse(await readFile(file), { columns: true, trim: true, skip_empty_lines: true, bom: true });
  } catch (err) {
    throw new DataError(`${file}: not a readable CSV (${(err as Error).message})`);
  }
  if (rows.length === 0 || columns.some((c) => !(c in rows[0])))
    throw new DataError(`${file}: expected the header "${columns.join(', ')}"`);
  return rows;
}
