/**
 * ELPV solar cells: labels.csv is a whitespace-separated table (not CSV) of
 * path, defect probability, cell type. dra.md: probability 0 is normal, 1 is an
 * anomaly, the uncertain 1/3 and 2/3 are left out by protocol (so not warned about);
 * the anomaly class is the cell type.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Dataset, DatasetItem } from '../types';
import { anomalyItem, keepExisting, makeDataset, normalItem, requireDirectory, requireFile } from './common';

const EXPECTED = 'the ELPV data set: labels.csv (path probability type per line) and images/';
const EPS = 1e-6;

export async function loadElpv(root: string): Promise<Dataset> {
  const dir = resolve(root);
  await requireDirectory(dir, EXPECTED);
  const labelsFile = join(dir, 'labels.csv');
  await requireFile(labelsFile, EXPECTED);

  const warnings: string[] = [];
  const listed: DatasetItem[] = [];
  const lines = (await readFile(labelsFile, 'utf8')).split(/\r?\n/);
  lines.forEach((line, k) => {
    const fields = line.trim().split(/\s+/);
    if (fields.length === 1 && fields[0] === '') return;
    const [relPath, probText, type] = fields;
    const prob = Number(probText);
    if (fields.length < 3 || !Number.isFinite(prob)) {
      warnings.push(
        `labels.csv line ${k + 1}: expected "path probability type", got "${line.trim()}", skipped`,
      );
      return;
    }
    const path = join(dir, relPath);
    if (Math.abs(prob) < EPS) listed.push(normalItem(path));
    else if (Math.abs(prob - 1) < EPS) listed.push(anomalyItem(path, type));
  });

  const items = await keepExisting(listed, warnings, labelsFile);
  return makeDataset('elpv', dir, items, warnings, EXPECTED);
}
