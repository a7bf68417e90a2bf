/** Head CT (hemorrhage): labels.csv `id, hemorrhage`; id N is head_ct/NNN.png. */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse } from 'csv-parse/sync';
import { DataError } from '../data-error';
import type { Dataset, DatasetItem } from '../types';
import { anomalyItem, keepExisting, makeDataset, normalItem, requireDirectory, requireFile } from './common';

export const HEADCT_ANOMALY_CLASS = 'hemorrhage';
const EXPECTED = 'the head CT data set: labels.csv ("id, hemorrhage") and head_ct/NNN.png';

export async function loadHeadct(root: string): Promise<Dataset> {
  const dir = resolve(root);
  await requireDirectory(dir, EXPECTED);
  const labelsFile = join(dir, 'labels.csv');
  await requireFile(labelsFile, EXPECTED);

  let rows: Record<string, string>[];
  try {
    // trim: the header has a space after the comma.
    rows = parse(await readFile(labelsFile), {
      columns: true,
      trim: true,
      skip_empty_lines: true,
      bom: true,
    });
  } catch (err) {
    throw new DataError(`${labelsFile}: not a readable CSV (${(err as Error).message})`);
  }
  if (rows.length === 0 || !('id' in rows[0]) || !(HEADCT_ANOMALY_CLASS in rows[0])) {
    throw new DataError(`${labelsFile}: expected the header "id, hemorrhage"`);
  }

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
