/** Head CT (hemorrhage): labels.csv `id, hemorrhage`; id N is head_ct/NNN.png. */
import { join, resolve } from 'node:path';
import type { Dataset, DatasetItem } from '../types';
import {
  anomalyItem,
  keepExisting,
  makeDataset,
  normalItem,
  readLabelRows,
  requireDirectory,
  requireFile,
} from './common';

export const HEADCT_ANOMALY_CLASS = 'hemorrhage';
const EXPECTED = 'the head CT data set: labels.csv ("id, hemorrhage") and head_ct/NNN.png';

export async function loadHeadct(root: string): Promise<Dataset> {
  const dir = resolve(root);
  await requireDirectory(dir, EXPECTED);
  const labelsFile = join(dir, 'labels.csv');
  await requireFile(labelsFile, EXPECTED);

  const rows = await readLabelRows(labelsFile, ['id', HEADCT_ANOMALY_CLASS]);

  const warnings: string[] = [];
  const listed: DatasetItem[] = [];
  rows.forEach((row, k) => {
    const id = Number(row.id);
    const flag = row[HEADCT_ANOMALY_CLASS];
    if (!Number.isInteger(id) || id < 0 || (flag !== '0' && flag !== '1')) {
      warnings.push(`labels.csv row ${k + 2}: "${row.id}, ${flag}" is not an id and a 0/1 label, skipped`);
      return;
    }
    const path = join(dir, 'head_ct', `${String(id).padStart(3, '0')}.png`);
    listed.push(flag === '1' ? anomalyItem(path, HEADCT_ANOMALY_CLASS) : normalItem(path));
  });

  const items = await keepExisting(listed, warnings, labelsFile);
  return makeDataset('headct', dir, items, warnings, EXPECTED);
}
