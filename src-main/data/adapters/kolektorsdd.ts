/**
 * KolektorSDD (the paper's "SDD"): labels.csv `path,label` (good / defect), one defect class
 * (crack), a pixel mask per image in masks/<image name>.png for localisation metrics.
 */
import { readFile } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { parse } from 'csv-parse/sync';
import { DataError } from '../data-error';
import type { Dataset, DatasetItem } from '../types';
import { parseLabel } from './csv';
import {
  anomalyItem,
  fileExists,
  keepExisting,
  makeDataset,
  normalItem,
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

  let rows: Record<string, string>[];
  try {
    rows = parse(await readFile(labelsFile), {
      columns: true,
      trim: true,
      skip_empty_lines: true,
      bom: true,
    });
  } catch (err) {
    throw new DataError(`${labelsFile}: not a readable CSV (${(err as Error).message})`);
  }
  if (rows.length === 0 || !('path' in rows[0]) || !('label' in rows[0]))
    throw new DataError(`${labelsFile}: expected the header "path,label"`);

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
