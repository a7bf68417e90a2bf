/**
 * `.swanmodel` files: one model version as a zip of its model folder (manifest.json, the
 * weight files) plus `swanmodel.json`, what the project knew about the version (label
 * counts, metrics, settings). Import is defensive: entries must stay inside the folder,
 * sizes are bounded, the zip must be complete, and the extracted folder must load with the
 * engine's own checks (format version, backbone, checksums) before it is moved into place.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import yazl from 'yazl';
import { z } from 'zod';
import { loadModel, ModelFileError, type ModelManifest } from '../engine/model-file';

export const SWANMODEL_EXT = '.swanmodel';
export const INFO_FILE = 'swanmodel.json';
/** A model folder holds a few files of at most tens of MB; anything far beyond is not a model. */
export const MAX_ENTRIES = 64;
export const MAX_TOTAL_BYTES = 2 * 1024 ** 3;

export class ModelArchiveError extends Error {
  constructor(
    message: string,
    readonly problem:
      | 'not-zip'
      | 'truncated'
      | 'unsafe-path'
      | 'too-large'
      | 'not-model'
      | 'version'
      | 'backbone'
      | 'damaged',
  ) {
    super(message);
    this.name = 'ModelArchiveError';
  }
}

/** What the exporting project knew about the version; optional on import. */
export const ModelInfoFile = z.object({
  app: z.literal('swan-inspector'),
  version: z.number().int().positive(),
  createdAt: z.string(),
  exportedAt: z.string(),
  project: z.string(),
  labelCounts: z.object({ good: z.number().int().min(0), defect: z.number().int().min(0) }),
  settings: z.record(z.string(), z.unknown()),
  metrics: z.record(z.string(), z.unknown()).nullable(),
  warnings: z.array(z.string()),
});
export type ModelInfoFile = z.infer<typeof ModelInfoFile>;

/** Writes `modelDir` as a zip at `file`, atomically (temp file + rename). */
export async function exportModelArchive(
  modelDir: string,
  file: string,
  info: ModelInfoFile,
): Promise<number> {
  const entries = await readdir(modelDir, { withFileTypes: true });
  if (!entries.some((e) => e.isFile() && e.name === 'manifest.json')) {
    throw new ModelArchiveError(`${modelDir} is not a model folder (no manifest.json in it)`, 'not-model');
  }
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  const zip = new yazl.ZipFile();
  // Fixed dates: exporting the same model twice gives the same bytes.
  const mtime = new Date(Date.UTC(2020, 0, 1));
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.isFile() && e.name !== INFO_FILE)
      zip.addFile(join(modelDir, e.name), e.name, { mtime, mode: 0o644 });
  }
  zip.addBuffer(Buffer.from(JSON.stringify(info, null, 2)), INFO_FILE, { mtime, mode: 0o644 });
  zip.end();
  try {
    await pipeline(zip.outputStream, createWriteStream(tmp));
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return (await stat(file)).size;
}

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((res, rej) =>
    yauzl.open(
      file,
      { lazyEntries: true, autoClose: true, validateEntrySizes: true, strictFileNames: false },
      (err, zf) => (err || !zf ? rej(err ?? new Error('cannot open')) : res(zf)),
    ),
  );
}

function openEntry(zf: yauzl.ZipFile, entry: yauzl.Entry): Promise<NodeJS.ReadableStream> {
  return new Promise((res, rej) =>
    zf.openReadStream(entry, (err, s) => (err || !s ? rej(err ?? new Error('no stream')) : res(s))),
  );
}

/** Rejects names that are absolute or climb out of the folder, before anything is written. */
export function safeEntryPath(root: string, name: string): string {
  const unsafe =
    name.length === 0 ||
    name.includes('\0') ||
    isAbsolute(name) ||
    /^[a-zA-Z]:/.test(name) ||
    name.startsWith('\\') ||
    name.split(/[\\/]/).includes('..');
  const target = resolve(root, name);
  const rel = relative(root, target);
  if (unsafe || rel.startsWith('..') || isAbsolute(rel)) {
    throw new ModelArchiveError(
      `refused: the file holds an entry "${name}" that would be written outside the model folder (a zip-slip attempt or a broken archive); nothing was imported`,
      'unsafe-path',
    );
  }
  return target;
}

function describeZipError(file: string, err: unknown): ModelArchiveError {
  if (err instanceof ModelArchiveError) return err;
  const msg = (err as Error).message ?? String(err);
  if (/absolute path|invalid relative path/.test(msg)) {
    return new ModelArchiveError(
      `refused: ${file} holds an entry that would be written outside the model folder (${msg}); nothing was imported`,
      'unsafe-path',
    );
  }
  if (
    /end of central directory|central directory|unexpected EOF|truncated|invalid (local|central)|too many|expected|signature/i.test(
      msg,
    )
  ) {
    return new ModelArchiveError(
      `${file} is damaged or truncated: it is not a complete .swanmodel (zip) file (${msg}); nothing was imported`,
      'truncated',
    );
  }
  return new ModelArchiveError(`${file} could not be read as a .swanmodel file: ${msg}`, 'not-zip');
}

/** Extracts every entry into `dest` (which must not exist yet). */
async function extractAll(file: string, dest: string): Promise<void> {
  const zf = await openZip(file);
  await mkdir(dest, { recursive: true });
  let count = 0;
  let bytes = 0;
  await new Promise<void>((res, rej) => {
    const fail = (err: unknown) => {
      zf.close();
      rej(err);
    };
    zf.on('error', fail);
    zf.on('end', () => res());
    zf.on('entry', (entry: yauzl.Entry) => {
      void (async () => {
        count++;
        bytes += entry.uncompressedSize;
        if (count > MAX_ENTRIES || bytes > MAX_TOTAL_BYTES) {
          throw new ModelArchiveError(
            `${file} holds more than a model folder can (${count} entries, ${bytes} bytes); nothing was imported`,
            'too-large',
          );
        }
        const target = safeEntryPath(dest, entry.fileName);
        if (entry.fileName.endsWith('/')) {
          await mkdir(target, { recursive: true });
        } else {
          await mkdir(dirname(target), { recursive: true });
          const stream = await openEntry(zf, entry);
          await pipeline(stream, createWriteStream(target, { flags: 'wx' }));
        }
        zf.readEntry();
      })().catch(fail);
    });
    zf.readEntry();
  });
}

/** The folder holding manifest.json: the root, or a single top folder (zips made by hand). */
async function modelRoot(dir: string): Promise<string> {
  const entries = await readdir(dir, { withFileTypes: true });
  if (entries.some((e) => e.isFile() && e.name === 'manifest.json')) return dir;
  const dirs = entries.filter((e) => e.isDirectory());
  if (dirs.length === 1 && entries.length === 1) return modelRoot(join(dir, dirs[0].name));
  throw new ModelArchiveError(
    'the file holds no manifest.json: it is not a Swan Inspector model',
    'not-model',
  );
}

export interface ImportedArchive {
  /** Folder name inside `modelsDir`. */
  dirName: string;
  manifest: ModelManifest;
  info: ModelInfoFile | null;
}

/**
 * Extracts a `.swanmodel` into a temporary folder inside `modelsDir`, checks it with the
 * engine's loader (format version, `expectBackboneId`, checksums) and renames it into
 * place. On any failure the temporary folder is removed: nothing stays behind.
 */
export async function importModelArchive(
  file: string,
  modelsDir: string,
  expectBackboneId: string,
): Promise<ImportedArchive> {
  const st = await stat(file).catch(() => null);
  if (!st?.isFile()) throw new ModelArchiveError(`${file} does not exist or is not a file`, 'not-zip');
  await mkdir(modelsDir, { recursive: true });
  const tag = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const tmp = join(modelsDir, `.import-${tag}`);
  try {
    try {
      await extractAll(file, tmp);
    } catch (err) {
      throw describeZipError(file, err);
    }
    const root = await modelRoot(tmp);
    let manifest: ModelManifest;
    try {
      manifest = (await loadModel(root, { backboneId: expectBackboneId })).manifest;
    } catch (err) {
      if (err instanceof ModelFileError) {
        const problem =
          err.problem === 'version' ? 'version' : err.problem === 'backbone' ? 'backbone' : 'damaged';
        const hint =
          problem === 'version'
            ? ' It was exported by a different version of Swan Inspector.'
            : problem === 'backbone'
              ? ' This app scores with a different pretrained network, so the model cannot be used here.'
              : '';
        throw new ModelArchiveError(
          `${file} was refused: ${err.message}${hint} Nothing was imported.`,
          problem,
        );
      }
      throw err;
    }
    let info: ModelInfoFile | null = null;
    const rawInfo = await readFile(join(root, INFO_FILE), 'utf8').catch(() => null);
    if (rawInfo !== null) {
      try {
        const parsed = ModelInfoFile.safeParse(JSON.parse(rawInfo));
        info = parsed.success ? parsed.data : null;
      } catch {
        info = null;
      }
    }
    const dirName = `imported-${tag}`;
    await rename(root, join(modelsDir, dirName));
    return { dirName, manifest, info };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Is `child` inside `parent` (both absolute)? */
export function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) && !rel.split(sep).includes('..');
}
