/** Test helpers for the app back end: temp folders, real images made with sharp. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll } from 'vitest';
import type { AnyEvent } from '../../../src-main/api/contract';
import { ApiService } from '../../../src-main/api/service';

export function tempDir(prefix = 'swan-app-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A small textured PNG; `brightness` shifts the mean so tests can predict the fake engine's ranking. */
export async function makePng(
  path: string,
  opts: { size?: number; width?: number; height?: number; brightness?: number; seed?: number } = {},
): Promise<void> {
  const size = opts.size ?? 32;
  const width = opts.width ?? size;
  const height = opts.height ?? size;
  const base = opts.brightness ?? 100;
  let s = opts.seed ?? 1;
  const px = Buffer.alloc(width * height * 3);
  for (let i = 0; i < px.length; i++) {
    // A small LCG: deterministic texture without Math.random.
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    px[i] = Math.max(0, Math.min(255, base + ((s >> 16) % 40) - 20));
  }
  await sharp(px, { raw: { width, height, channels: 3 } })
    .png()
    .toFile(path);
}

/**
 * A project's images for a test: `count` PNGs written into `dir` (image k made with
 * `opts(k)`, seed k + 1 unless given), imported into the open project; their ids in order.
 */
export async function importPngs(
  api: ApiService,
  dir: string,
  count: number,
  opts: (k: number) => { size?: number; width?: number; height?: number; brightness?: number; seed?: number },
): Promise<number[]> {
  const files: string[] = [];
  for (let k = 0; k < count; k++) {
    const f = join(dir, `i${k}.png`);
    await makePng(f, { seed: k + 1, ...opts(k) });
    files.push(f);
  }
  return (await api.invoke('import.run', { source: { kind: 'paths', paths: files } })).importedIds;
}

export async function makeJpeg(path: string, size = 32): Promise<void> {
  await sharp({ create: { width: size, height: size, channels: 3, background: { r: 90, g: 120, b: 30 } } })
    .jpeg()
    .toFile(path);
}

function crc32(buf: Buffer): number {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/**
 * A valid-looking PNG whose header claims width x height (e.g. 30000x30000 = 2.7 GB of
 * pixels) with only a few rows of data: decoding it would need the full size, so it must
 * be refused from the header.
 */
export function writeHugePngHeader(path: string, width = 30000, height = 30000): void {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = Buffer.alloc(4 * (1 + width * 3)); // four rows of black
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
  writeFileSync(path, png);
}

export const FAKE_ENGINE = new URL('./fixtures/fake-engine.ts', import.meta.url).href;

/** Waits until `pred` holds, polling; fails with `what` after `ms`. */
export async function waitFor(
  pred: () => boolean | Promise<boolean>,
  what: string,
  ms = 20_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

type PngOptions = Parameters<typeof importPngs>[3];

/**
 * A labelled project on the real API in a fresh temp folder, made before a describe block's tests
 * and closed after them: `count` PNGs (image k from `image(k)`), the first `good` labelled good and
 * image `defect` a defect of class `className`; every event collected in `events`.
 */
export function labelledProject(opts: {
  name: string;
  count: number;
  image: PngOptions;
  good: number;
  defect: number;
  className: string;
}): { api: ApiService; events: AnyEvent[]; ids: number[] } {
  const tmp = tempDir();
  const project = {
    api: new ApiService({ projectsRoot: join(tmp.dir, 'projects') }),
    events: [] as AnyEvent[],
    ids: [] as number[],
  };
  beforeAll(async () => {
    project.api.on((e) => project.events.push(e));
    await project.api.invoke('project.create', { name: opts.name });
    project.ids = await importPngs(project.api, tmp.dir, opts.count, opts.image);
    await project.api.invoke('labels.set', { ids: project.ids.slice(0, opts.good), label: 'good' });
    await project.api.invoke('labels.set', {
      ids: [project.ids[opts.defect]!],
      label: 'defect',
      className: opts.className,
    });
  });
  afterAll(async () => {
    await project.api.close();
    tmp.cleanup();
  });
  return project;
}
