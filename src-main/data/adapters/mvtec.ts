/**
 * MVTec AD layout: train/good/, test/good/, test/<defect class>/; a defect's pixel mask, when
 * ground_truth/<class>/<name>_mask.png exists, is attached for localisation metrics only.
 */
import { basename, extname, join, resolve } from 'node:path';
import { NORMAL_CLASS, type Dataset, type DatasetItem } from '../types';
import {
  anomalyItem,
  fileExists,
  listImages,
  listSubfolders,
  makeDataset,
  normalItem,
  requireDirectory,
} from './common';

const EXPECTED = 'an MVTec AD layout: train/good/, test/good/ and test/<defect class>/ with images';

export async function loadMvtec(dir: string): Promise<Dataset> {
  const root = resolve(dir);
  await requireDirectory(root, EXPECTED);
  await requireDirectory(join(root, 'train', NORMAL_CLASS), EXPECTED);
  await requireDirectory(join(root, 'test'), EXPECTED);

  const warnings: string[] = [];
  const train = await listImages(join(root, 'train', NORMAL_CLASS));
  warnings.push(...train.warnings);
  const trainNormals = train.images.map(normalItem);

  const testNormals: DatasetItem[] = [];
  const anomalies: DatasetItem[] = [];
  for (const cls of await listSubfolders(join(root, 'test'))) {
    const listed = await listImages(join(root, 'test', cls));
    warnings.push(...listed.warnings);
    if (cls === NORMAL_CLASS) testNormals.push(...listed.images.map(normalItem));
    else {
      for (const p of listed.images) {
        const item = anomalyItem(p, cls);
        const mask = join(root, 'ground_truth', cls, `${basename(p, extname(p))}_mask.png`);
        if (await fileExists(mask)) item.mask = mask;
        anomalies.push(item);
      }
    }
  }

  const items = [...trainNormals, ...testNormals, ...anomalies];
  return makeDataset(`mvtec:${basename(root)}`, root, items, warnings, EXPECTED, {
    trainNormals,
    testNormals,
  });
}
