/** MVTec AD layout: train/good/, test/good/, test/<defect class>/ (ground_truth/ ignored). */
import { basename, join, resolve } from 'node:path';
import { NORMAL_CLASS, type Dataset, type DatasetItem } from '../types';
import { anomalyItem, listImages, listSubfolders, makeDataset, normalItem, requireDirectory } from './common';

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
    else anomalies.push(...listed.images.map((p) => anomalyItem(p, cls)));
  }

  const items = [...trainNormals, ...testNormals, ...anomalies];
  return makeDataset(`mvtec:${basename(root)}`, root, items, warnings, EXPECTED, {
    trainNormals,
    testNormals,
  });
}
