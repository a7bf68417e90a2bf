/**
 * The one rule for every file either front door (browser-mode /files, Electron swan-image://)
 * serves. A generated file (thumbnail, preview) is served only when its real path, symlinks
 * resolved, lies inside the project's real folder. An original lives where the inspector
 * imported it from: it is served only while its content is still the one imported (SHA-256
 * of the row), so a tampered row or a swapped file serves nothing. The content type is the
 * format libvips reads from the bytes, never the file name.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import sharp from 'sharp';
import { readImageHeader } from '../data/decode';
import type { ProjectStore } from './store';
import { writePreview, writeThumbFromFile } from './thumbs';

/** Formats a browser shows, by libvips' name for them. */
const BROWSER_TYPES: Record<string, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
};

export interface ServedFile {
  contentType: string;
  /** Either a file to stream... */
  file?: string;
  /** ...or bytes made on the fly. */
  body?: Buffer;
}

/** `file`'s real path when it lies inside `dir`'s real path (both must exist), else null. */
export async function realPathInside(dir: string, file: string): Promise<string | null> {
  try {
    const [d, f] = await Promise.all([realpath(dir), realpath(file)]);
    const rel = relative(d, f);
    return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? f : null;
  } catch {
    return null;
  }
}

/** The browser content type of an image file, read from its bytes; null when not one. */
async function browserType(file: string): Promise<string | null> {
  const meta = await sharp(file)
    .metadata()
    .catch(() => null);
  return (meta?.format && BROWSER_TYPES[meta.format]) || null;
}

/** Verified originals by identity (path, inode, size, mtime): hashing once per change. */
const verified = new Map<string, string>();

async function sameContent(path: string, sha256: string): Promise<boolean> {
  const st = await stat(path).catch(() => null);
  if (!st?.isFile()) return false;
  const key = `${path}\0${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  if (verified.get(key) === sha256) return true;
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch {
    return false;
  }
  if (hash.digest('hex') !== sha256) return false;
  if (verified.size > 10_000) verified.clear();
  verified.set(key, sha256);
  return true;
}

/** The thumbnail of image `id`, made again from the original when the cached one is gone. */
export async function servedThumb(store: ProjectStore, id: number): Promise<ServedFile | null> {
  const row = store.imageFileRow(id);
  if (!row) return null;
  const file = join(store.thumbsDir, `${row.sha256}.jpg`);
  if (!existsSync(file)) {
    if (!(await sameContent(row.path, row.sha256))) return null;
    await writeThumbFromFile(row.path, file).catch(() => null);
  }
  const inside = await realPathInside(store.dir, file);
  const type = inside && (await browserType(inside));
  return inside && type ? { contentType: type, file: inside } : null;
}

/** The original of image `id` when a browser shows its format, else its cached PNG preview. */
export async function servedImage(store: ProjectStore, id: number): Promise<ServedFile | null> {
  const row = store.imageFileRow(id);
  if (!row || !(await sameContent(row.path, row.sha256))) return null;
  const header = await readImageHeader(row.path).catch(() => null);
  if (!header) return null;
  const type = BROWSER_TYPES[header.format];
  if (type) return { contentType: type, file: row.path };
  const dir = store.previewsDir;
  const file = join(dir, `${row.sha256}.png`);
  if (!existsSync(file)) {
    await mkdir(dir, { recursive: true });
    await writePreview(row.path, header, file);
  }
  const inside = await realPathInside(store.dir, file);
  return inside && (await browserType(inside)) === 'image/png'
    ? { contentType: 'image/png', file: inside }
    : null;
}
