/**
 * Labels from a data set's own label file, by mapping its columns: an id column turned into
 * an image path by a template (e.g. HeadCT's `labels.csv` `id, hemorrhage`: `head_ct/{id:03}.png`,
 * relative to the label file's folder), and a label column whose given values mean defect.
 * Only images already in the project are labelled; a row that matches none is reported with
 * the path it tried.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse } from 'csv-parse/sync';
import { AppError } from '../api/errors';

export interface LabelFileMapping {
  file: string;
  /** Column whose value fills the template. */
  idColumn: string;
  /** e.g. "head_ct/{id:03}.png": `{column}` or `{column:0N}` (zero-padded to N digits). */
  pathTemplate: string;
  labelColumn: string;
  /** Values of labelColumn that mean defect (compared trimmed); every other value means good. */
  defectValues: string[];
}

export interface LabelFileRow {
  path: string;
  label: 'good' | 'defect';
}

/** Fills a path template from one row; throws naming the column a placeholder lacks. */
export function fillTemplate(template: string, row: Record<string, string>): string {
  return template.replace(/\{([^}:]+)(?::0?(\d+))?\}/g, (_, col: string, width?: string) => {
    const key = col.trim();
    if (!(key in row))
      throw new AppError(
        'invalid_input',
        `path template: the label file has no column "${key}" (columns: ${Object.keys(row).join(', ')})`,
      );
    const v = row[key].trim();
    return width ? v.padStart(Number(width), '0') : v;
  });
}

/** Reads the label file and maps every row to a path and a label. */
export async function readLabelFile(m: LabelFileMapping): Promise<LabelFileRow[]> {
  let text: string;
  try {
    text = await readFile(m.file, 'utf8');
  } catch (err) {
    throw new AppError('invalid_input', `cannot read the label file ${m.file}: ${(err as Error).message}`);
  }
  let rows: Record<string, string>[];
  try {
    // Headers and cells trimmed: "id, hemorrhage" has a space after the comma.
    rows = parse(text, { columns: (h: string[]) => h.map((c) => c.trim()), trim: true, skip_empty_lines: true });
  } catch (err) {
    throw new AppError('invalid_input', `${m.file} is not a readable CSV: ${(err as Error).message}`);
  }
  if (rows.length === 0) throw new AppError('invalid_input', `${m.file} has no rows below its header`);
  for (const col of [m.idColumn, m.labelColumn]) {
    if (!(col in rows[0]))
      throw new AppError(
        'invalid_input',
        `${m.file} has no column "${col}" (columns: ${Object.keys(rows[0]).join(', ')})`,
      );
  }
  const base = dirname(resolve(m.file));
  const defect = new Set(m.defectValues.map((v) => v.trim()));
  return rows.map((r) => {
    const rel = fillTemplate(m.pathTemplate, r);
    return {
      path: isAbsolute(rel) ? resolve(rel) : resolve(base, rel),
      label: defect.has((r[m.labelColumn] ?? '').trim()) ? 'defect' : 'good',
    };
  });
}
