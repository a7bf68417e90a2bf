import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MAX_IMAGE_PIXELS,
  decodeImage,
  encodePng,
  fileContentHash,
  loadImageResized,
  resizeRgb,
  rotateRgb,
} from '../../../src-main/data/decode';
import { ImageError } from '../../../src-main/data/image-error';
import type { RgbImage } from '../../../src-main/data/types';

let dir: string;
const at = (name: string): string => join(dir, name);

function crc32(buf: Buffer): number {
  let c = ~0;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type: string, body: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const typed = Buffer.concat([Buffer.from(type, 'ascii'), body]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed));
  return Buffer.concat([len, typed, crc]);
}

/** A valid PNG header claiming a huge size, with almost no pixel data: a decompression bomb's shape. */
function hugePngHeader(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(1024))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function pixel(img: RgbImage, x: number, y: number): number[] {
  const o = (y * img.width + x) * 3;
  return [img.data[o], img.data[o + 1], img.data[o + 2]];
}

async function expectImageError(promise: Promise<unknown>, path: string, reason: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ImageError);
  const ie = err as ImageError;
  expect(ie.path).toBe(path);
  expect(ie.reason).toMatch(reason);
  expect(ie.message).toContain(path);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'swan-decode-'));
  // 4x2 RGB with distinct pixels.
  const rgb = Buffer.from([
    255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 1, 2, 3,
  ]);
  await sharp(rgb, { raw: { width: 4, height: 2, channels: 3 } })
    .png()
    .toFile(at('rgb.png'));
  await sharp(Buffer.from([0, 64, 128, 255]), { raw: { width: 2, height: 2, channels: 1 } })
    .png()
    .toFile(at('gray.png'));
  const g16 = new Uint16Array([0, 100 * 257, 200 * 257, 65535]);
  await sharp(g16, { raw: { width: 2, height: 2, channels: 1 } })
    .toColourspace('grey16')
    .png()
    .toFile(at('gray16.png'));
  const rgba = Buffer.from([200, 100, 50, 255, 200, 100, 50, 0]);
  await sharp(rgba, { raw: { width: 2, height: 1, channels: 4 } })
    .png()
    .toFile(at('alpha.png'));
  // Left half red, right half blue, stored 40x20 with "rotate 90 clockwise to display".
  const lr = Buffer.alloc(40 * 20 * 3);
  for (let y = 0; y < 20; y++)
    for (let x = 0; x < 40; x++) lr.set(x < 20 ? [255, 0, 0] : [0, 0, 255], (y * 40 + x) * 3);
  await sharp(lr, { raw: { width: 40, height: 20, channels: 3 } })
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toFile(at('exif6.jpg'));

  writeFileSync(at('empty.png'), Buffer.alloc(0));
  const noisy = sharp({
    create: {
      width: 120,
      height: 120,
      channels: 3,
      background: '#000',
      noise: { type: 'gaussian', mean: 128, sigma: 40 },
    },
  });
  // Cut in half, each a file whose header promises more than it holds.
  for (const [file, encoded] of [
    ['truncated.png', await noisy.clone().png().toBuffer()],
    ['truncated.jpg', await noisy.clone().jpeg().toBuffer()],
  ] as const) {
    writeFileSync(at(file), encoded.subarray(0, Math.floor(encoded.length / 2)));
  }
  writeFileSync(at('text.png'), 'id,label\nthis is a CSV, not a picture\n');
  writeFileSync(at('huge.png'), hugePngHeader(30000, 30000));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('decodeImage', () => {
  it('returns the exact pixels of an RGB PNG', async () => {
    const img = await decodeImage(at('rgb.png'));
    expect([img.width, img.height, img.data.length]).toEqual([4, 2, 24]);
    expect(pixel(img, 0, 0)).toEqual([255, 0, 0]);
    expect(pixel(img, 3, 0)).toEqual([10, 20, 30]);
    expect(pixel(img, 3, 1)).toEqual([1, 2, 3]);
  });

  it('expands grayscale to three equal channels', async () => {
    const img = await decodeImage(at('gray.png'));
    expect(img.data.length).toBe(12);
    expect([pixel(img, 0, 0), pixel(img, 1, 0), pixel(img, 1, 1)]).toEqual([
      [0, 0, 0],
      [64, 64, 64],
      [255, 255, 255],
    ]);
  });

  it('brings a 16-bit PNG down to 8 bits', async () => {
    expect((await sharp(at('gray16.png')).metadata()).depth).toBe('ushort');
    const img = await decodeImage(at('gray16.png'));
    expect(Array.from(img.data.filter((_, i) => i % 3 === 0))).toEqual([0, 100, 200, 255]);
  });

  it('flattens alpha on black', async () => {
    const img = await decodeImage(at('alpha.png'));
    expect(img.data.length).toBe(6);
    expect(pixel(img, 0, 0)).toEqual([200, 100, 50]);
    expect(pixel(img, 1, 0)).toEqual([0, 0, 0]);
  });

  it('applies the EXIF orientation', async () => {
    const img = await decodeImage(at('exif6.jpg'));
    // Rotated 90 degrees clockwise: the stored left (red) half is now on top.
    expect([img.width, img.height]).toEqual([20, 40]);
    const top = pixel(img, 10, 5);
    const bottom = pixel(img, 10, 34);
    expect(top[0]).toBeGreaterThan(200);
    expect(top[2]).toBeLessThan(50);
    expect(bottom[2]).toBeGreaterThan(200);
    expect(bottom[0]).toBeLessThan(50);
  });

  it('refuses an empty file', async () => {
    await expectImageError(decodeImage(at('empty.png')), at('empty.png'), /^empty file$/);
  });

  it('refuses a truncated PNG and a truncated JPEG', async () => {
    await expectImageError(decodeImage(at('truncated.png')), at('truncated.png'), /truncated or corrupt/);
    await expectImageError(decodeImage(at('truncated.jpg')), at('truncated.jpg'), /truncated or corrupt/);
  });

  it('refuses a text file named .png', async () => {
    await expectImageError(decodeImage(at('text.png')), at('text.png'), /^not an image$/);
  });

  it('refuses a missing file', async () => {
    await expectImageError(decodeImage(at('nope.png')), at('nope.png'), /file not found/);
  });

  it('refuses a 30000x30000 image from its header, quickly', async () => {
    const t0 = performance.now();
    await expectImageError(decodeImage(at('huge.png')), at('huge.png'), /^too large: 30000x30000$/);
    await expectImageError(loadImageResized(at('huge.png'), 64), at('huge.png'), /^too large: 30000x30000$/);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(30000 * 30000).toBeGreaterThan(MAX_IMAGE_PIXELS);
  });

  it('honours a smaller pixel limit', async () => {
    await expectImageError(decodeImage(at('rgb.png'), { maxPixels: 7 }), at('rgb.png'), /^too large: 4x2$/);
    expect((await decodeImage(at('rgb.png'), { maxPixels: 8 })).width).toBe(4);
  });
});

describe('loadImageResized', () => {
  it('squashes to size x size after orientation', async () => {
    const img = await loadImageResized(at('exif6.jpg'), 16);
    expect([img.width, img.height, img.data.length]).toEqual([16, 16, 16 * 16 * 3]);
    expect(pixel(img, 8, 2)[0]).toBeGreaterThan(200); // red on top
    expect(pixel(img, 8, 13)[2]).toBeGreaterThan(200); // blue below
  });

  it('gives 3 channels for grayscale input', async () => {
    const img = await loadImageResized(at('gray.png'), 4);
    expect(img.data.length).toBe(4 * 4 * 3);
    expect(pixel(img, 3, 3)[0]).toBe(pixel(img, 3, 3)[1]);
  });

  it('refuses bad files with the same reasons as decodeImage', async () => {
    await expectImageError(loadImageResized(at('text.png'), 8), at('text.png'), /^not an image$/);
    await expectImageError(
      loadImageResized(at('truncated.png'), 8),
      at('truncated.png'),
      /truncated or corrupt/,
    );
  });
});

describe('in-memory helpers', () => {
  const grid: RgbImage = {
    width: 3,
    height: 3,
    data: new Uint8Array(27).map((_, i) => Math.floor(i / 3) * 10 + 5),
  };

  it('resizes a uniform image to a uniform image of the asked size', async () => {
    const flat: RgbImage = { width: 10, height: 6, data: new Uint8Array(180).fill(77) };
    const out = await resizeRgb(flat, 4, 9);
    expect([out.width, out.height, out.data.length]).toEqual([4, 9, 108]);
    expect(out.data.every((v) => v === 77)).toBe(true);
  });

  it('rotates by a right angle exactly, counter-clockwise for positive degrees', async () => {
    const out = await rotateRgb(grid, 90);
    // Pixel k of the grid has value 10k+5; k = y*3+x. After a CCW turn the top row is the old right column.
    expect([0, 1, 2].map((x) => pixel(out, x, 0)[0])).toEqual([25, 55, 85]);
    expect([0, 1, 2].map((x) => pixel(out, x, 2)[0])).toEqual([5, 35, 65]);
    const half = await rotateRgb(grid, 180);
    // Channels are equal here, so a half turn is the byte array reversed.
    expect(Array.from(half.data)).toEqual(Array.from(grid.data).reverse());
    expect(Array.from((await rotateRgb(grid, 0)).data)).toEqual(Array.from(grid.data));
  });

  it('keeps the size and fills uncovered corners with black', async () => {
    const white: RgbImage = { width: 21, height: 11, data: new Uint8Array(21 * 11 * 3).fill(255) };
    const out = await rotateRgb(white, 45);
    expect([out.width, out.height]).toEqual([21, 11]);
    expect(pixel(out, 0, 0)).toEqual([0, 0, 0]);
    expect(pixel(out, 20, 10)).toEqual([0, 0, 0]);
    expect(pixel(out, 10, 5)).toEqual([255, 255, 255]);
  });

  it('round-trips through encodePng', async () => {
    writeFileSync(at('grid.png'), await encodePng(grid));
    const back = await decodeImage(at('grid.png'));
    expect(Array.from(back.data)).toEqual(Array.from(grid.data));
  });

  it('hashes file content with sha256', async () => {
    const bytes = Buffer.from('some bytes to hash');
    writeFileSync(at('h.bin'), bytes);
    expect(await fileContentHash(at('h.bin'))).toBe(createHash('sha256').update(bytes).digest('hex'));
    await expectImageError(fileContentHash(at('absent.bin')), at('absent.bin'), /file not found/);
  });
});
