#!/usr/bin/env node
/* global process */
/**
 * Renders resources/icon.svg into the installers' icons (committed, so `npm run dist` needs no
 * extra step; run again after changing the SVG):
 *   build/icons/<N>x<N>.png  N = 16 ... 512   Linux (electron-builder linux.icon: a folder of sizes)
 *   build/icon.png           512 px           fallback icon, also for the window
 *   build/icon.ico           16 ... 256 px    Windows and NSIS: one ICO, PNG-compressed entries
 * An ICO is a 6-byte header, a 16-byte directory entry per image, then the images; since Windows
 * Vista an entry may be a whole PNG file (https://en.wikipedia.org/wiki/ICO_(file_format)).
 *   SWAN_ICON_OUT=DIR writes into DIR instead of build/ (tests).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

export const PNG_SIZES = [16, 24, 32, 48, 64, 128, 256, 512];
export const ICO_SIZES = [16, 24, 32, 48, 64, 128, 256];

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.env.SWAN_ICON_OUT ?? join(root, 'build'));
const svg = readFileSync(join(root, 'resources', 'icon.svg'));

async function render(size) {
  // Rendered at the target size from the vector (not downscaled from 512): small sizes stay crisp.
  return sharp(svg, { density: Math.max(72, (72 * size) / 512) * 4 })
    .resize(size, size)
    .png({ compressionLevel: 9 })
    .toBuffer();
}

function ico(images) {
  const header = Buffer.alloc(6);
  header.writeUInt16LE(0, 0); // reserved
  header.writeUInt16LE(1, 2); // 1 = icon
  header.writeUInt16LE(images.length, 4);
  const entries = [];
  let offset = 6 + 16 * images.length;
  for (const { size, png } of images) {
    const e = Buffer.alloc(16);
    e.writeUInt8(size >= 256 ? 0 : size, 0); // 0 means 256
    e.writeUInt8(size >= 256 ? 0 : size, 1);
    e.writeUInt8(0, 2); // no palette
    e.writeUInt8(0, 3);
    e.writeUInt16LE(1, 4); // colour planes
    e.writeUInt16LE(32, 6); // bits per pixel
    e.writeUInt32LE(png.length, 8);
    e.writeUInt32LE(offset, 12);
    offset += png.length;
    entries.push(e);
  }
  return Buffer.concat([header, ...entries, ...images.map((i) => i.png)]);
}

mkdirSync(join(out, 'icons'), { recursive: true });
const pngs = new Map();
for (const size of PNG_SIZES) {
  const png = await render(size);
  pngs.set(size, png);
  writeFileSync(join(out, 'icons', `${size}x${size}.png`), png);
}
writeFileSync(join(out, 'icon.png'), pngs.get(512));
writeFileSync(join(out, 'icon.ico'), ico(ICO_SIZES.map((size) => ({ size, png: pngs.get(size) }))));
process.stdout.write(
  `make-icons: ${PNG_SIZES.length} PNGs into ${join(out, 'icons')}, icon.png and icon.ico (${ICO_SIZES.join(', ')} px) into ${out}\n`,
);
