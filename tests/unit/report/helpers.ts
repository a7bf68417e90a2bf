/** A real project (SQLite store, image files, thumbnails) with scores written as the app writes them. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { ProjectStore, type ScoreRow } from '../../../src-main/project/store';

export interface SyntheticImage {
  name: string;
  batch: string;
  label?: 'good' | 'defect';
  cls?: string;
  /** null: not scored. */
  total: number | null;
  perHead?: Record<string, number>;
  /** Write a real image file (else the path does not exist: shown as missing). */
  file?: boolean;
  /** Write a thumbnail into the project's thumbs/. */
  thumb?: boolean;
  /** Brightness of the picture. */
  shade?: number;
}

export async function tinyJpeg(shade = 120, size = 48): Promise<Buffer> {
  const px = Buffer.alloc(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 3;
      const v = Math.max(0, Math.min(255, shade + ((x * 7 + y * 13) % 40) - 20));
      px[i] = v;
      px[i + 1] = v;
      px[i + 2] = Math.max(0, v - 30);
    }
  return sharp(px, { raw: { width: size, height: size, channels: 3 } })
    .jpeg()
    .toBuffer();
}

/** A 4x4 heatmap bright in the top-left corner, scaled by `peak`. */
export function heatmap(peak: number): ScoreRow['heatmap'] {
  const data = new Float32Array(16);
  for (let i = 0; i < 16; i++) data[i] = peak * Math.max(0, 1 - ((i % 4) + Math.floor(i / 4)) / 4);
  return { h: 4, w: 4, data };
}

export async function buildProject(
  dir: string,
  images: SyntheticImage[],
  opts: {
    name?: string;
    threshold?: number | null;
    model?: boolean;
    filesDir?: string;
    sharedThumb?: Buffer;
  } = {},
): Promise<{ store: ProjectStore; ids: number[]; modelId: number | null }> {
  const store = ProjectStore.create(join(dir, 'project'), opts.name ?? 'Bracket line 3');
  const filesDir = opts.filesDir ?? join(dir, 'images');
  mkdirSync(filesDir, { recursive: true });
  const ids: number[] = [];
  const insert = store.db.transaction(() => {
    images.forEach((img, k) => {
      const path = join(filesDir, img.name);
      ids.push(store.insertImage({ path, sha256: `sha-${k}`, width: 48, height: 48, batch: img.batch }));
    });
  });
  insert();
  for (const [k, img] of images.entries()) {
    if (img.file || img.thumb) {
      const jpeg = opts.sharedThumb ?? (await tinyJpeg(img.shade ?? 60 + ((k * 37) % 150)));
      if (img.file) writeFileSync(join(filesDir, img.name), jpeg);
      if (img.thumb) writeFileSync(join(store.thumbsDir, `sha-${k}.jpg`), jpeg);
    }
  }
  store.refreshStatus();
  const classes = new Map<string, number>();
  for (const [k, img] of images.entries()) {
    if (!img.label) continue;
    let cls: number | null = null;
    if (img.label === 'defect' && img.cls) {
      cls = classes.get(img.cls) ?? store.ensureClass(img.cls).id;
      classes.set(img.cls, cls);
    }
    store.setLabels([ids[k]], img.label, cls);
  }
  let modelId: number | null = null;
  if (opts.model !== false) {
    mkdirSync(join(store.modelsDir, 'run-1'), { recursive: true });
    const m = store.addModel({
      dir: 'models/run-1',
      settings: { seed: 0, backbone: 'mobilenet_v1_0.75', inputSize: 224 },
      labelGood: 2,
      labelDefect: 1,
      labelIds: ids.slice(0, 3),
      metrics: { aucRoc: 0.931, ap: 0.874 },
      warnings: [],
      runId: null,
    });
    modelId = m.id;
    const rows: ScoreRow[] = [];
    images.forEach((img, k) => {
      if (img.total === null) return;
      rows.push({
        imageId: ids[k],
        total: img.total,
        // Keys out of display order on purpose: the report must sort them (HEAD_ORDER).
        perHead: img.perHead ?? {
          global: img.total * 0.05,
          knn: img.total * 0.1,
          gaussian: img.total * 0.05,
          seen: img.total * 0.5,
          pseudo: img.total * 0.3,
          residual: img.total * 0.2,
          normality: img.total * 0.2,
        },
        heatmap: heatmap(Math.max(0.05, img.total)),
      });
    });
    for (let i = 0; i < rows.length; i += 1000) store.saveScores(m.id, rows.slice(i, i + 1000));
    if (opts.threshold !== null) store.setThreshold(opts.threshold ?? 0.5, m.id);
  }
  return { store, ids, modelId };
}
