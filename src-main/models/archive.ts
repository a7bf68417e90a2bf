/**
 * `.swanmodel` files: one model version as a zip of its model folder (manifest.json, the
 * weight files) plus `swanmodel.json`, what the project knew about the version (label
 * counts, metrics, settings). Import is defensive: entries must stay inside the folder,
 * sizes are bounded, only the files the manifest lists are kept, and the extracted folder
 * must pass the engine's checks (model-schema.ts, checksums) and fit the backbone's shapes
 * before it is moved into place, in the same step as its database row.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import yazl from 'yazl';
import { z } from 'zod';
import { expectedLevelShapes } from '../engine/backbone/catalog';
import { checkModel, ModelFileError, type ModelManifest } from '../engine/model-file';

export const SWANMODEL_EXT = '.swanmodel';
export const INFO_FILE = 'swanmodel.json';
/** A model folder holds a few files of at most tens of MB; anything far beyond is not a model. */
export const MAX_ENTRIES = 64;
/**
 * The largest real models: a kNN patch bank of 1,000 normals at 224 (49 x 768 floats each) is
 * 150 MB, fine-tuned backbone weights 10-100 MB; the model measured in the report is 1.6 MB.
 */
export const MAX_TOTAL_BYTES = 1024 ** 3;
const MAX_MANIFEST_BYTES = 64 * 1024 ** 2;
/** Folder names in models/: a half-done import, and an imported model (NOTES.md: cleanup on open). */
export const IMPORT_TEMP_PREFIX = '.import-';
export const IMPORTED_PREFIX = 'imported-';

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
      { lazyEntries: true, autoClose: false, validateEntrySizes: true, strictFileNames: false },
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

interface ListedEntry {
  entry: yauzl.Entry;
  /** Name inside the model folder (a single top folder of a hand-made zip stripped). */
  name: string;
}

/**
 * Reads the central directory: every name checked (zip slip refused), counted and sized
 * before a byte is extracted. Returns the zip (still open) and its file entries.
 */
async function listEntries(file: string): Promise<{ zf: yauzl.ZipFile; entries: ListedEntry[] }> {
  const zf = await openZip(file);
  const all: yauzl.Entry[] = [];
  await new Promise<void>((res, rej) => {
    zf.on('error', rej);
    zf.on('end', () => res());
    zf.on('entry', (entry: yauzl.Entry) => {
      all.push(entry);
      if (all.length > MAX_ENTRIES) {
        zf.close();
        return rej(
          new ModelArchiveError(
            `${file} holds more than ${MAX_ENTRIES} entries: a model folder holds a few files; nothing was imported`,
            'too-large',
          ),
        );
      }
      try {
        safeEntryPath('/model', entry.fileName);
      } catch (err) {
        zf.close();
        return rej(err);
      }
      zf.readEntry();
    });
    zf.readEntry();
  });
  const files = all.filter((e) => !e.fileName.endsWith('/'));
  // Zips made by hand often hold the folder itself: one top folder is accepted and stripped.
  const tops = new Set(files.map((e) => (e.fileName.includes('/') ? e.fileName.split('/')[0] : '')));
  const prefix = tops.size === 1 && !tops.has('') ? `${[...tops][0]}/` : '';
  const entries = files.map((entry) => ({ entry, name: entry.fileName.slice(prefix.length) }));
  const names = new Set<string>();
  for (const { name } of entries) {
    if (names.has(name))
      throw new ModelArchiveError(`${file} holds ${name} twice; nothing was imported`, 'damaged');
    names.add(name);
  }
  return { zf, entries };
}

async function readEntry(zf: yauzl.ZipFile, entry: yauzl.Entry): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await openEntry(zf, entry)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Extracts manifest.json, the files it lists and swanmodel.json into `dest`; nothing else
 * (an unlisted entry is left in the zip). Each listed file must be in the zip with the size
 * the manifest gives, and all of them within MAX_TOTAL_BYTES, checked before extracting.
 */
async function extractListed(file: string, dest: string): Promise<void> {
  const { zf, entries } = await listEntries(file);
  try {
    const byName = new Map(entries.map((e) => [e.name, e.entry]));
    const manifestEntry = byName.get('manifest.json');
    if (!manifestEntry)
      throw new ModelArchiveError(
        'the file holds no manifest.json: it is not a Swan Inspector model',
        'not-model',
      );
    if (manifestEntry.uncompressedSize > MAX_MANIFEST_BYTES)
      throw new ModelArchiveError(
        `${file}: manifest.json is ${manifestEntry.uncompressedSize} bytes, far more than a manifest holds; nothing was imported`,
        'too-large',
      );
    const manifestBytes = await readEntry(zf, manifestEntry);
    let listed: Record<string, { bytes?: unknown }>;
    try {
      const m = JSON.parse(manifestBytes.toString('utf8')) as { files?: unknown };
      if (!m.files || typeof m.files !== 'object' || Array.isArray(m.files)) throw new Error('no files');
      listed = m.files as Record<string, { bytes?: unknown }>;
    } catch {
      throw new ModelArchiveError(
        `${file} was refused: manifest.json is not valid JSON or lists no files (manifest.json: files). Nothing was imported.`,
        'damaged',
      );
    }
    let total = manifestBytes.length;
    const wanted: [string, yauzl.Entry][] = [];
    for (const [name, info] of Object.entries(listed)) {
      const entry = byName.get(name);
      if (!entry)
        throw new ModelArchiveError(
          `${file} was refused: manifest.json lists ${name}, which the file does not hold. Nothing was imported.`,
          'damaged',
        );
      if (entry.uncompressedSize !== info?.bytes)
        throw new ModelArchiveError(
          `${file} was refused: ${name} is ${entry.uncompressedSize} bytes in the zip, manifest.json says ${String(info?.bytes)} (manifest.json: files.${name}.bytes). Nothing was imported.`,
          'damaged',
        );
      total += entry.uncompressedSize;
      wanted.push([name, entry]);
    }
    const infoEntry = byName.get(INFO_FILE);
    if (infoEntry && infoEntry.uncompressedSize <= MAX_MANIFEST_BYTES) {
      total += infoEntry.uncompressedSize;
      wanted.push([INFO_FILE, infoEntry]);
    }
    if (total > MAX_TOTAL_BYTES)
      throw new ModelArchiveError(
        `${file} holds ${total} bytes of model files, more than a model holds (at most ${MAX_TOTAL_BYTES}); nothing was imported`,
        'too-large',
      );
    await mkdir(dest, { recursive: true });
    await writeFile(join(dest, 'manifest.json'), manifestBytes, { flag: 'wx' });
    for (const [name, entry] of wanted) {
      // safeEntryPath again: the names come from the manifest this time.
      const target = safeEntryPath(dest, name);
      // yauzl checks the bytes against the declared size while streaming (validateEntrySizes).
      await pipeline(await openEntry(zf, entry), createWriteStream(target, { flags: 'wx' }));
    }
  } finally {
    zf.close();
  }
}

export interface ImportedArchive {
  /** Folder name inside `modelsDir`. */
  dirName: string;
  manifest: ModelManifest;
  info: ModelInfoFile | null;
}

function refusal(file: string, err: ModelFileError): ModelArchiveError {
  const problem = err.problem === 'version' ? 'version' : err.problem === 'backbone' ? 'backbone' : 'damaged';
  const hint =
    problem === 'version'
      ? ' It was exported by a different version of Swan Inspector.'
      : problem === 'backbone'
        ? ' This app scores with a different pretrained network, so the model cannot be used here.'
        : '';
  return new ModelArchiveError(`${file} was refused: ${err.message}${hint} Nothing was imported.`, problem);
}

/** The model's feature maps against what its backbone gives (engine/backbone/catalog.ts). */
function checkBackboneShapes(file: string, manifest: ModelManifest): void {
  const expected = expectedLevelShapes(manifest.backbone);
  if (!expected) return;
  const bad =
    'problem' in expected
      ? expected.problem
      : manifest.reference.shapes
          .map((s, i) => {
            const e = expected.shapes[i];
            return e && (e.h !== s.h || e.w !== s.w || e.c !== s.c)
              ? `reference.shapes.${i}: ${s.h}x${s.w}x${s.c}, but ${manifest.backbone.featureLayer} of ${manifest.backbone.id} at input ${manifest.backbone.inputSize} gives ${e.h}x${e.w}x${e.c}`
              : null;
          })
          .find((x) => x !== null);
  if (bad)
    throw new ModelArchiveError(
      `${file} was refused: manifest.json: ${bad}; the model cannot score with this app's backbone. Nothing was imported.`,
      'backbone',
    );
}

/**
 * Extracts a `.swanmodel` into a temporary folder inside `modelsDir` and checks it whole
 * (schema, shapes against the backbone, checksums, streamed: no weight is held in memory).
 * Then `record` runs with a `moveIntoPlace` it must call inside its database transaction:
 * the folder move and the row are one step (a crash between them leaves an `imported-*`
 * folder without a row, which the next open removes). On any failure nothing stays behind.
 */
export async function importModelArchive<T>(
  file: string,
  modelsDir: string,
  expectBackboneId: string,
  record: (imported: ImportedArchive, moveIntoPlace: () => void) => T,
): Promise<T> {
  const st = await stat(file).catch(() => null);
  if (!st?.isFile()) throw new ModelArchiveError(`${file} does not exist or is not a file`, 'not-zip');
  await mkdir(modelsDir, { recursive: true });
  const tag = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const tmp = join(modelsDir, `${IMPORT_TEMP_PREFIX}${tag}`);
  const dirName = `${IMPORTED_PREFIX}${tag}`;
  const final = join(modelsDir, dirName);
  let moved = false;
  try {
    try {
      await extractListed(file, tmp);
    } catch (err) {
      throw describeZipError(file, err);
    }
    let manifest: ModelManifest;
    try {
      manifest = (await checkModel(tmp, { backboneId: expectBackboneId }, { verifyFiles: true })).manifest;
    } catch (err) {
      if (err instanceof ModelFileError) throw refusal(file, err);
      throw err;
    }
    checkBackboneShapes(file, manifest);
    let info: ModelInfoFile | null = null;
    const rawInfo = await readFile(join(tmp, INFO_FILE), 'utf8').catch(() => null);
    if (rawInfo !== null) {
      try {
        const parsed = ModelInfoFile.safeParse(JSON.parse(rawInfo));
        info = parsed.success ? parsed.data : null;
      } catch {
        info = null;
      }
    }
    return record({ dirName, manifest, info }, () => {
      renameSync(tmp, final);
      moved = true;
    });
  } catch (err) {
    if (moved) rmSync(final, { recursive: true, force: true });
    throw err;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Is `child` inside `parent` (both absolute)? */
export function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) && !rel.split(sep).includes('..');
}
