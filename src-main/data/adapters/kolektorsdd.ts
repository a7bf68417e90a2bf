/**
 * KolektorSDD (the paper's "SDD"): labels.csv `path,label` (good / defect), one defect class
 * (crack), a pixel mask per image in masks/<image name>.png for localisation metrics.
 */
import { basename, extname, join, resolve } from 'node:path';
import type { Dataset, DatasetItem } from '../types';
import { parseLabel } from './csv';
import {
  anomalyItem,
  fileExists,
  keepExisting,
  makeDataset,
  normalItem,
  readLabelRows,
  requireDirectory,
  requireFile,
} from './common';

export const KOLEKTOR_ANOMALY_CLASS = 'crack';
const EXPECTED = 'the KolektorSDD data set: labels.csv ("path,label", good/defect), images/ and masks/';

export async function loadKolektorSdd(root: string): Promise<Dataset> {
  const dir = resolve(root);
  await requireDirectory(dir, EXPECTED);
  const labelsFile = join(dir, 'labels.csv');
  await requireFile(labelsFile, EXPECTED);

  const rows = await readLabelRows(labelsFile, ['path', 'label']);

  const warnings: string[] = [];
  const listed: DatasetItem[] = [];
  rows.forEach((row, k) => {
    const label = parseLabel(row.label ?? '');
    if (!row.path || label === undefined) {
      warnings.push(
        `labels.csv row ${k + 2}: "${row.path}, ${row.label}" is not a path and good/defect, skipped`,
      );
      return;
    }
    const path = join(dir, row.path);
    listed.push(label === 1 ? anomalyItem(path, KOLEKTOR_ANOMALY_CLASS) : normalItem(path));
  });
  const items = await keepExisting(listed, warnings, labelsFile);
  for (const it of items) {
    if (it.label !== 1) continue;
    const mask = join(dir, 'masks', `${basename(it.path, extname(it.path))}.png`);
    if (await fileExists(mask)) it.mask = mask;
    else warnings.push(`${it.path}: no mask in masks/, left out of localisation metrics`);
  }
  return makeDataset('kolektorsdd', dir, items, warnings, EXPECTED);
}
