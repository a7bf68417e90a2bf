/**
 * Thumbnails (gallery, report) and previews (originals a browser cannot show): made from the
 * file with shrink-on-load, through one bounded decode queue for the whole process, written
 * atomically and cached on disk in the project by content hash. libvips decodes on libuv's
 * thread pool, off the JS main thread; the queue bounds how many decodes (and so how much
 * pixel memory) run at once, whatever the number of requests.
 */
import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { imageErrorFrom, readImageHeader, type ImageHeader } from '../data/decode';

export const THUMB_SIZE = 256;
/** Originals a browser cannot show are served as a PNG of at most this side. */
export const PREVIEW_SIDE = 4096;
/** Decodes at once in this process (2 cores here; each decode may use more libvips threads). */
export const DECODE_CONCURRENCY = 2;

const decodeQueue = pLimit(DECODE_CONCURRENCY);

/** Runs an image decode through the process's one bounded queue. */
export function queuedDecode<T>(fn: () => Promise<T>): Promise<T> {
  return decodeQueue(fn);
}

/** Decodes in flight and waiting (for tests and diagnostics). */
export function decodeQueueLoad(): { active: number; pending: number } {
  return { active: decodeQueue.activeCount, pending: decodeQueue.pendingCount };
}

/** Writes next to `file` under a temporary name, then renames: a crash leaves no half file. */
async function writeAtomic(file: string, data: Buffer): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

function encodeThumb(path: string, header: ImageHeader): Promise<Buffer> {
  // resize() before decoding lets libvips shrink JPEG/WebP while loading, and stream PNG rows.
  return sharp(path, header.options)
    .rotate()
    .resize(THUMB_SIZE, THUMB_SIZE, { fit: 'inside', withoutEnlargement: true })
    .flatten({ background: { r: 0, g: 0, b: 0 } })
    .jpeg({ quality: 80 })
    .toBuffer();
}

/**
 * Checks the image (header, then a full decode: a truncated file fails here) and writes its
 * thumbnail to `file`. Returns the upright size. Throws ImageError naming the file and why.
 */
export async function writeThumbFromFile(
  path: string,
  file: string,
): Promise<{ width: number; height: number }> {
  const header = await readImageHeader(path);
  const jpeg = await queuedDecode(() => encodeThumb(path, header)).catch((err: unknown) => {
    throw imageErrorFrom(path, err);
  });
  await writeAtomic(file, jpeg);
  return { width: header.width, height: header.height };
}

/** A thumbnail's bytes without writing it (the report's fallback when the cached one is gone). */
export async function thumbBytes(path: string): Promise<Buffer> {
  const header = await readImageHeader(path);
  return queuedDecode(() => encodeThumb(path, header));
}

/** Writes a PNG preview of at most PREVIEW_SIDE to `file` (cached: made once per content). */
export async function writePreview(path: string, header: ImageHeader, file: string): Promise<void> {
  const png = await queuedDecode(() =>
    sharp(path, header.options)
      .rotate()
      .resize(PREVIEW_SIDE, PREVIEW_SIDE, { fit: 'inside', withoutEnlargement: true })
      .png()
      .toBuffer(),
  );
  await writeAtomic(file, png);
}
