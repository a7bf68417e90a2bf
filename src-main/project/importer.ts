/**
 * Import: expands a source (files, folders, a data-set layout) into candidate files,
 * checks each one (decodable, not empty, not truncated, not absurdly large — refused
 * from its header before any pixel is decoded), writes its thumbnail and records it.
 * A bad file is reported with its name and reason and skipped; it never stops the batch.
 */
import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { ImportSource, ImportSummary, SkippedFile } from '../api/contract';
import { AppError } from '../api/errors';
import { isImageName } from '../data/adapters/common';
import { fileContentHash } from '../data/decode';
import { ImageError } from '../data/image-error';
import type { Dataset } from '../data/types';
import type { ProjectStore } from './store';
import { writeThumbFromFile } from './thumbs';

export interface Candidate {
  path: string;
  label?: 'good' | 'defect';
  cls?: string;
}

export type ImportProgress = (done: number, total: number, current?: string) => void;

/** Folder names taken as the normal class in a folder-per-class layout. */
const NORMAL_FOLDER_NAMES = ['good', 'normal', 'ok', 'pass', 'no_defect'];

function skip(path: string, reason: string): SkippedFile {
  return { name: basename(path), path, reason };
}

/** Adapter warnings read "<path>: <reason>"; they become skipped-file entries. */
function warningToSkip(w: string): SkippedFile {
  const k = w.indexOf(': ');
  return k > 0 ? skip(w.slice(0, k), w.slice(k + 2)) : { name: w, path: w, reason: 'skipped' };
}

async function walk(dir: string, out: Candidate[], skipped: SkippedFile[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    if (e.name.startsWith('.') || e.name === 'Thumbs.db') continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, out, skipped);
    else if (e.isFile()) {
      if (isImageName(e.name)) out.push({ path: p });
      else skipped.push(skip(p, 'not an image (unsupported file type)'));
    }
  }
}

function fromDataset(ds: Dataset): { candidates: Candidate[]; skipped: SkippedFile[] } {
  return {
    candidates: ds.items.map((i) =>
      i.label === 0
        ? { path: i.path, label: 'good' as const }
        : { path: i.path, label: 'defect' as const, cls: i.cls },
    ),
    skipped: ds.warnings.map(warningToSkip),
  };
}

/** Turns an import source into the files to check, and those already known to be unusable. */
export async function expandSource(
  source: ImportSource,
): Promise<{ candidates: Candidate[]; skipped: SkippedFile[] }> {
  switch (source.kind) {
    case 'paths': {
      const candidates: Candidate[] = [];
      const skipped: SkippedFile[] = [];
      for (const raw of source.paths) {
        const p = resolve(raw);
        let isDir = false;
        try {
          isDir = (await stat(p)).isDirectory();
        } catch {
          skipped.push(skip(p, 'file not found'));
          continue;
        }
        if (isDir) await walk(p, candidates, skipped);
        else candidates.push({ path: p });
      }
      return { candidates, skipped };
    }
    case 'mvtec': {
      const { loadMvtec } = await import('../data/adapters/mvtec');
      return fromDataset(await loadMvtec(source.root));
    }
    case 'folders': {
      const { loadFolders } = await import('../data/adapters/folders');
      const root = resolve(source.root);
      const subs = existsSync(root)
        ? (await readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name)
        : [];
      const normal = subs.find((s) => NORMAL_FOLDER_NAMES.includes(s.toLowerCase()));
      if (!normal) {
        throw new AppError(
          'invalid_input',
          `${root}: no folder of good images found; name it one of ${NORMAL_FOLDER_NAMES.join(', ')} (found: ${subs.join(', ') || 'no sub-folders'})`,
        );
      }
      return fromDataset(await loadFolders(root, normal));
    }
    case 'csv': {
      const { loadCsv } = await import('../data/adapters/csv');
      return fromDataset(await loadCsv(source.file));
    }
  }
}

interface Checked {
  cand: Candidate;
  sha256: string;
  width: number;
  height: number;
}

/** Runs `fn` over items with at most `limit` in flight, keeping result order. */
async function mapLimit<T, R>(
  items: T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const k = next++;
      out[k] = await fn(items[k], k);
    }
  });
  await Promise.all(runners);
  return out;
}

export async function importCandidates(
  store: ProjectStore,
  candidates: Candidate[],
  preSkipped: SkippedFile[],
  opts: { batch: string; applyLabels: boolean; onProgress?: ImportProgress; signal?: AbortSignal },
): Promise<ImportSummary> {
  const skipped = [...preSkipped];
  const importedIds: number[] = [];
  let duplicates = 0;
  let labelled = 0;
  let done = 0;
  const total = candidates.length;

  const applyLabel = (id: number, c: Candidate): void => {
    if (!opts.applyLabels || !c.label) return;
    const classId = c.label === 'defect' ? store.ensureClass(c.cls ?? 'defect').id : null;
    store.setLabels([id], c.label, classId);
    labelled++;
  };

  // Files are checked two at a time but recorded in listing order, chunk by chunk, so
  // image ids follow the order of the folder (and an interrupted import keeps whole chunks).
  const seen = new Set<string>();
  const importedSet = new Set<number>();
  const CHUNK = 8;
  for (let start = 0; start < candidates.length; start += CHUNK) {
    if (opts.signal?.aborted) {
      throw new AppError(
        'no_project',
        `the import was stopped because the project was closed: ${importedIds.length} of ${total} files were recorded`,
      );
    }
    const chunk = candidates.slice(start, start + CHUNK);
    const checked = await mapLimit(chunk, 2, async (cand): Promise<Checked | null> => {
      const path = resolve(cand.path);
      try {
        if (seen.has(path) || store.imageIdByPath(path) !== null) return null;
        seen.add(path);
        const sha256 = await fileContentHash(path);
        // Refuses oversized images from the header, then decodes with shrink-on-load (a
        // truncated file fails here) through the bounded decode queue: no full-size pixels.
        const { width, height } = await writeThumbFromFile(path, join(store.thumbsDir, `${sha256}.jpg`));
        return { cand: { ...cand, path }, sha256, width, height };
      } catch (err) {
        if (err instanceof ImageError) {
          skipped.push(skip(path, err.reason));
          return null;
        }
        throw err;
      } finally {
        done++;
        opts.onProgress?.(done, total, basename(path));
      }
    });
    store.db.transaction(() => {
      chunk.forEach((cand, k) => {
        const c = checked[k];
        // Re-checked inside the transaction: another import may have recorded the file meanwhile.
        if (c && store.imageIdByPath(c.cand.path) === null) {
          const id = store.insertImage({
            path: c.cand.path,
            sha256: c.sha256,
            width: c.width,
            height: c.height,
            batch: opts.batch,
          });
          applyLabel(id, c.cand);
          importedIds.push(id);
          importedSet.add(id);
          return;
        }
        const path = resolve(cand.path);
        const existing = store.imageIdByPath(path);
        // Already in the project (before this import, or listed twice): labels still apply.
        if (existing !== null && !importedSet.has(existing)) {
          duplicates++;
          applyLabel(existing, cand);
        } else if (existing !== null) duplicates++;
      });
    })();
  }

  importedIds.sort((a, b) => a - b);
  return { batch: opts.batch, imported: importedIds.length, duplicates, skipped, importedIds, labelled };
}
