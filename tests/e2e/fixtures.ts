/**
 * Generates the e2e image set: textured "good" parts and a few with synthetic defects of
 * two kinds, written as PNG with sharp. Deterministic (seeded) so failures reproduce.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../src-main/engine/util/rng';

export const SIDE = 96;

export type DefectKind = 'scratch' | 'spot';

export interface FixtureSet {
  root: string;
  goodFiles: string[];
  defectFiles: { file: string; kind: DefectKind }[];
  /** Files that are not valid images and must be reported as skipped. */
  badFiles: string[];
}

/** A woven texture with small random jitter: every good image differs but looks alike. */
function texture(rng: Rng): Uint8Array {
  const px = new Uint8Array(SIDE * SIDE * 3);
  const phase = rng.uniform(0, Math.PI * 2);
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      const weave = Math.sin((x + phase) * 0.7) * Math.sin((y + phase) * 0.7);
      const v = 128 + 40 * weave + 10 * rng.normal();
      const i = (y * SIDE + x) * 3;
      px[i] = clamp(v + 10);
      px[i + 1] = clamp(v);
      px[i + 2] = clamp(v - 15);
    }
  }
  return px;
}

function clamp(v: number): number {
  return Math.max(0, Math.min(255, Math.round(v)));
}

/** A dark diagonal scratch, 3 px wide. */
function addScratch(px: Uint8Array, rng: Rng): void {
  const x0 = rng.int(SIDE / 2);
  const y0 = rng.int(SIDE / 4);
  const len = SIDE / 2;
  for (let t = 0; t < len; t++) {
    for (let w = -1; w <= 1; w++) {
      const x = x0 + t + w;
      const y = y0 + t;
      if (x < 0 || y < 0 || x >= SIDE || y >= SIDE) continue;
      const i = (y * SIDE + x) * 3;
      px[i] = 20;
      px[i + 1] = 20;
      px[i + 2] = 25;
    }
  }
}

/** A bright round blemish. */
function addSpot(px: Uint8Array, rng: Rng): void {
  const cx = 20 + rng.int(SIDE - 40);
  const cy = 20 + rng.int(SIDE - 40);
  const r = 9;
  for (let y = cy - r; y <= cy + r; y++) {
    for (let x = cx - r; x <= cx + r; x++) {
      if ((x - cx) ** 2 + (y - cy) ** 2 > r * r) continue;
      const i = (y * SIDE + x) * 3;
      px[i] = 250;
      px[i + 1] = 240;
      px[i + 2] = 90;
    }
  }
}

async function writePng(path: string, px: Uint8Array): Promise<void> {
  await sharp(Buffer.from(px), { raw: { width: SIDE, height: SIDE, channels: 3 } })
    .png()
    .toFile(path);
}

export async function generateFixtures(
  root: string,
  opts: { good?: number; perKind?: number; seed?: number } = {},
): Promise<FixtureSet> {
  const good = opts.good ?? 40;
  const perKind = opts.perKind ?? 3;
  const rng = new Rng(opts.seed ?? 7);
  await mkdir(root, { recursive: true });
  const set: FixtureSet = { root, goodFiles: [], defectFiles: [], badFiles: [] };
  for (let i = 0; i < good; i++) {
    const file = join(root, `good_${String(i).padStart(3, '0')}.png`);
    await writePng(file, texture(rng));
    set.goodFiles.push(file);
  }
  for (const kind of ['scratch', 'spot'] as const) {
    for (let i = 0; i < perKind; i++) {
      const px = texture(rng);
      if (kind === 'scratch') addScratch(px, rng);
      else addSpot(px, rng);
      const file = join(root, `part_${kind}_${i}.png`);
      await writePng(file, px);
      set.defectFiles.push({ file, kind });
    }
  }
  const notImage = join(root, 'notes.png');
  await writeFile(notImage, 'this is not an image');
  const empty = join(root, 'empty.png');
  await writeFile(empty, '');
  set.badFiles.push(notImage, empty);
  return set;
}
