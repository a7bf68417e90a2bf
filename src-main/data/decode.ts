/**
 * Image decoding with sharp: every image the engine sees goes through here, so it
 * always gets 8-bit RGB, upright (EXIF applied), without alpha, whatever the file was.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import sharp from 'sharp';
import { ImageError } from './image-error';
import type { RgbImage } from './types';

/** Larger images are refused from their header, before any pixel is decoded. */
export const MAX_IMAGE_PIXELS = 100_000_000;

export interface DecodeOptions {
  maxPixels?: number;
}

/**
 * torchvision's Resize on PIL images is an antialiased bilinear filter; libvips'
 * 'linear' reducer is the same triangle filter, so features match the reference.
 */
const RESIZE_KERNEL = 'linear' as const;

const BLACK = { r: 0, g: 0, b: 0 };

function reasonFor(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  if (/unsupported image format/i.test(msg)) return 'not an image';
  if (/pixel limit/i.test(msg)) return 'too large';
  return `truncated or corrupt (${msg.split('\n')[0]})`;
}

/**
 * Checks what can be checked without decoding: the file exists, is not empty, has a
 * readable image header, and is not absurdly large. Returns the sharp input options.
 */
async function checkHeader(path: string, maxPixels: number): Promise<sharp.SharpOptions> {
  return (await readImageHeader(path, maxPixels)).options;
}

/** What the header says: upright size (EXIF orientation applied), format, and the decode options. */
export interface ImageHeader {
  width: number;
  height: number;
  format: string;
  options: sharp.SharpOptions;
}

/**
 * The header checks of every decode (exists, not empty, an image, not absurdly large),
 * without decoding a pixel. Throws ImageError naming the file and why.
 */
export async function readImageHeader(path: string, maxPixels = MAX_IMAGE_PIXELS): Promise<ImageHeader> {
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new ImageError(path, 'not a file');
    size = st.size;
  } catch (err) {
    if (err instanceof ImageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new ImageError(path, code === 'ENOENT' ? 'file not found' : `cannot read (${code ?? String(err)})`);
  }
  if (size === 0) throw new ImageError(path, 'empty file');

  let meta: sharp.Metadata;
  try {
    // Header only; the limit is checked below so the message can give the size.
    meta = await sharp(path, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new ImageError(path, reasonFor(err));
  }
  const { width, height } = meta;
  if (!width || !height) throw new ImageError(path, 'not an image');
  if (width * height > maxPixels) throw new ImageError(path, `too large: ${width}x${height}`);
  const swapped = (meta.orientation ?? 1) >= 5;
  return {
    width: swapped ? height : width,
    height: swapped ? width : height,
    format: meta.format ?? 'unknown',
    // libvips enforces the limit again while decoding, as a second line of defence.
    options: { failOn: 'truncated', limitInputPixels: maxPixels },
  };
}

/** A sharp failure on `path` as the ImageError the user sees. */
export function imageErrorFrom(path: string, err: unknown): ImageError {
  return err instanceof ImageError ? err : new ImageError(path, reasonFor(err));
}

/** The common tail of every pipeline: upright, 3-channel 8-bit sRGB, alpha flattened on black. */
function toRgb(pipeline: sharp.Sharp): sharp.Sharp {
  return pipeline.flatten({ background: BLACK }).toColourspace('srgb').removeAlpha().raw({ depth: 'uchar' });
}

async function run(path: string, pipeline: sharp.Sharp): Promise<RgbImage> {
  let out: { data: Buffer; info: sharp.OutputInfo };
  try {
    out = await pipeline.toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new ImageError(path, reasonFor(err));
  }
  const { data, info } = out;
  if (info.channels !== 3) throw new ImageError(path, `unexpected channel count ${info.channels}`);
  return {
    width: info.width,
    height: info.height,
    data: new Uint8Array(data.buffer, data.byteOffset, data.length),
  };
}

/** Full-resolution 8-bit RGB. Throws ImageError naming the file and why it is unusable. */
export async function decodeImage(path: string, opts: DecodeOptions = {}): Promise<RgbImage> {
  const options = await checkHeader(path, opts.maxPixels ?? MAX_IMAGE_PIXELS);
  return run(path, toRgb(sharp(path, options).rotate()));
}

/**
 * Decodes and squashes to size x size (or the given width x height) in one pipeline (no aspect
 * kept, like torchvision Resize((s, s))): libvips can shrink while decoding, which is much
 * faster than decoding at full resolution first.
 */
export async function loadImageResized(
  path: string,
  size: number | { width: number; height: number },
  opts: DecodeOptions = {},
): Promise<RgbImage> {
  const options = await checkHeader(path, opts.maxPixels ?? MAX_IMAGE_PIXELS);
  const { width, height } = typeof size === 'number' ? { width: size, height: size } : size;
  const pipeline = sharp(path, options)
    .rotate()
    .resize(width, height, { fit: 'fill', kernel: RESIZE_KERNEL });
  return run(path, toRgb(pipeline));
}

function rawInput(img: RgbImage): sharp.Sharp {
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
}

/** Squash-resizes an in-memory image with the same filter as loadImageResized. */
export async function resizeRgb(img: RgbImage, width: number, height: number): Promise<RgbImage> {
  const { data, info } = await rawInput(img)
    .resize(width, height, { fit: 'fill', kernel: RESIZE_KERNEL })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return {
    width: info.width,
    height: info.height,
    data: new Uint8Array(data.buffer, data.byteOffset, data.length),
  };
}

/**
 * Rotates about the centre, keeping the size; uncovered corners are black. Positive
 * degrees turn counter-clockwise. Nearest-neighbour, as torchvision's RandomRotation
 * (the training augmentation of dra.md) does by default; done in plain TypeScript
 * because sharp would grow the canvas and interpolate.
 */
export async function rotateRgb(img: RgbImage, degrees: number): Promise<RgbImage> {
  const { width: w, height: h, data: src } = img;
  const out = new Uint8Array(src.length);
  const rad = (degrees * Math.PI) / 180;
  const cos = Math.cos(rad);
  const sin = Math.sin(rad);
  const cx = (w - 1) / 2;
  const cy = (h - 1) / 2;
  for (let y = 0; y < h; y++) {
    const dy = y - cy;
    for (let x = 0; x < w; x++) {
      const dx = x - cx;
      // Inverse mapping: where in the source does this output pixel come from.
      const sx = Math.round(cx + dx * cos - dy * sin);
      const sy = Math.round(cy + dx * sin + dy * cos);
      if (sx < 0 || sy < 0 || sx >= w || sy >= h) continue;
      const o = (y * w + x) * 3;
      const s = (sy * w + sx) * 3;
      out[o] = src[s];
      out[o + 1] = src[s + 1];
      out[o + 2] = src[s + 2];
    }
  }
  return { width: w, height: h, data: out };
}

/** sha256 of the file's bytes, streamed so large files never sit in memory. */
export async function fileContentHash(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ImageError(path, code === 'ENOENT' ? 'file not found' : `cannot read (${code ?? String(err)})`);
  }
  return hash.digest('hex');
}

export async function encodePng(img: RgbImage): Promise<Buffer> {
  return rawInput(img).png().toBuffer();
}
