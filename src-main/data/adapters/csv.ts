/**
 * A CSV of `path,label[,class]`: label 0/1 or good/defect (normal/anomaly also read),
 * paths relative to the CSV file's folder. A header row is recognised by its label
 * field not being a label.
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { parse } from 'csv-parse/sync';
import { DataError } from '../data-error';
import type { BinaryLabel, Dataset, DatasetItem } from '../types';
import { anomalyItem, keepExisting, makeDataset, normalItem, requireFile } from './common';

const EXPECTED = 'a CSV file with rows path,label[,class] (label 0/1 or good/defect)';
/** Class of anomalies whose row names none. */
export const DEFAULT_ANOMALY_CLASS = 'defect';

const LABELS: Record<string, BinaryLabel> = {
  '0': 0,
  good: 0,
  normal: 0,
  ok: 0,
  '1': 1,
  defect: 1,
  anomaly: 1,
  bad: 1,
};

export function parseLabel(text: string): BinaryLabel | undefined {
  return LABELS[text.trim().toLowerCase()];
}

export async function loadCsv(file: string): Promise<Dataset> {
  const csvPath = resolve(file);
  await requireFile(csvPath, EXPECTED);
  const folder = dirname(csvPath);

  let rows: { record: string[]; info: { lines: number } }[];
  try {
    rows = parse(await readFile(csvPath), {
      bom: true,
      trim: true,
      skip_empty_lines: true,
      relax_column_count: true,
      delimiter: [',', ';', '\t'],
      info: true,
    }) as unknown as { record: string[]; info: { lines: number } }[];
  } catch (err) {
    throw new DataError(`${csvPath}: not a readable CSV (${(err as Error).message})`);
  }

  const warnings: string[] = [];
  const listed: DatasetItem[] = [];
  rows.forEach(({ record, info }, k) => {
    const [rawPath = '', rawLabel = '', rawClass = ''] = record;
    const label = parseLabel(rawLabel);
    if (label === undefined) {
      if (k > 0 || record.length < 2) {
        warnings.push(
          `${basename(csvPath)} line ${info.lines}: label "${rawLabel}" is not 0/1 or good/defect, row skipped`,
        );
      }
      return; // the first row may be a header
    }
    if (!rawPath) {
      warnings.push(`${basename(csvPath)} line ${info.lines}: empty path, row skipped`);
      return;
    }
    const path = isAbsolute(rawPath) ? rawPath : resolve(folder, rawPath);
    listed.push(label === 0 ? normalItem(path) : anomalyItem(path, rawClass || DEFAULT_ANOMALY_CLASS));
  });
  if (listed.length === 0)
    throw new DataError(`${csvPath}: no rows with a path and a label (expected ${EXPECTED})`);

  const items = await keepExisting(listed, warnings, csvPath);
  return makeDataset(
    `csv:${basename(csvPath)}`,
    folder,
    items,
    warnings,
    `${EXPECTED}; none of the listed files exist`,
  );
}
