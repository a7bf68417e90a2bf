/** One sub-folder per class; the folder named `normalName` holds the normal images. */
import { basename, join, resolve } from 'node:path';
import { DataError } from '../data-error';
import type { Dataset, DatasetItem } from '../types';
import { anomalyItem, listImages, listSubfolders, makeDataset, normalItem, requireDirectory } from './common';

export async function loadFolders(dir: string, normalName: string): Promise<Dataset> {
  const root = resolve(dir);
  const expected = `one sub-folder of images per class, one of them named "${normalName}" for the normal images`;
  await requireDirectory(root, expected);
  const classes = await listSubfolders(root);
  if (!classes.includes(normalName)) {
    const found = classes.length ? classes.join(', ') : 'no sub-folders';
    throw new DataError(`${root}: no sub-folder "${normalName}" for the normal images (found: ${found})`);
  }

  const warnings: string[] = [];
  const items: DatasetItem[] = [];
  for (const cls of classes) {
    const listed = await listImages(join(root, cls));
    warnings.push(...listed.warnings);
    items.push(...listed.images.map((p) => (cls === normalName ? normalItem(p) : anomalyItem(p, cls))));
  }
  if (!items.some((i) => i.label === 0))
    throw new DataError(`${join(root, normalName)}: no images found (expected the normal images)`);
  return makeDataset(`folders:${basename(root)}`, root, items, warnings, expected);
}
