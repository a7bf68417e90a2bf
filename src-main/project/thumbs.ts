/** Thumbnails for the gallery: small JPEGs, so scrolling 10,000 images never decodes originals. */
import { writeFile } from 'node:fs/promises';
import sharp from 'sharp';
import type { RgbImage } from '../data/types';

export const THUMB_SIZE = 256;

export async function writeThumb(img: RgbImage, file: string): Promise<void> {
  const jpeg = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(THUMB_SIZE, THUMB_SIZE, { fit: 'inside', withoutEnlargement: true })
    .jpeg({ quality: 80 })
    .toBuffer();
  await writeFile(file, jpeg);
}
