import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiService } from '../../../src-main/api/service';
import { DECODE_CONCURRENCY, decodeQueueLoad } from '../../../src-main/project/thumbs';
import { makeJpeg, makePng, tempDir, writeHugePngHeader } from './helpers';

describe('import through the API', () => {
  let tmp: ReturnType<typeof tempDir>;
  let api: ApiService;
  beforeEach(async () => {
    tmp = tempDir();
    api = new ApiService({ projectsRoot: join(tmp.dir, 'projects') });
    await api.invoke('project.create', { name: 'Import test' });
  });
  afterEach(async () => {
    await api.close();
    tmp.cleanup();
  });

  it('imports good files, and reports non-image, zero-byte, truncated and 30000x30000 files by name and reason', async () => {
    const src = join(tmp.dir, 'batch');
    mkdirSync(join(src, 'sub'), { recursive: true });
    await makePng(join(src, 'a.png'));
    await makeJpeg(join(src, 'sub', 'b.jpg'));
    writeFileSync(join(src, 'notes.txt'), 'not an image');
    writeFileSync(join(src, 'fake.png'), 'this is text with a .png name');
    writeFileSync(join(src, 'empty.png'), '');
    await makePng(join(src, 'whole.png'), { size: 64 });
    const whole = readFileSync(join(src, 'whole.png'));
    writeFileSync(join(src, 'truncated.png'), whole.subarray(0, Math.floor(whole.length / 2)));
    await makeJpeg(join(src, 'whole.jpg'), 64);
    const wj = readFileSync(join(src, 'whole.jpg'));
    writeFileSync(join(src, 'truncated.jpg'), wj.subarray(0, Math.floor(wj.length / 2)));
    writeHugePngHeader(join(src, 'huge.png'));

    const rssBefore = process.memoryUsage().rss;
    const t0 = performance.now();
    const s = await api.invoke('import.run', { source: { kind: 'paths', paths: [src] } });
    const ms = performance.now() - t0;
    const rssGrowthMb = (process.memoryUsage().rss - rssBefore) / 2 ** 20;

    expect(s.imported).toBe(4); // a.png, b.jpg, whole.png, whole.jpg
    const reasons = Object.fromEntries(s.skipped.map((k) => [k.name, k.reason]));
    expect(Object.keys(reasons).sort()).toEqual([
      'empty.png',
      'fake.png',
      'huge.png',
      'notes.txt',
      'truncated.jpg',
      'truncated.png',
    ]);
    expect(reasons['notes.txt']).toMatch(/not an image/);
    expect(reasons['fake.png']).toMatch(/not an image/);
    expect(reasons['empty.png']).toMatch(/empty/);
    expect(reasons['truncated.png']).toMatch(/truncated|corrupt/);
    expect(reasons['truncated.jpg']).toMatch(/truncated|corrupt/);
    expect(reasons['huge.png']).toMatch(/too large.*30000x30000/);
    for (const k of s.skipped) expect(k.path.startsWith(src)).toBe(true);
    // Decoding 30000x30000 RGB would need 2.7 GB; refusing it from the header needs next to nothing.
    expect(rssGrowthMb).toBeLessThan(300);
    expect(ms).toBeLessThan(20_000);

    const list = await api.invoke('images.list', { limit: 50 });
    expect(list.total).toBe(4);
    expect(list.items.map((i) => i.name).sort()).toEqual(['a.png', 'b.jpg', 'whole.jpg', 'whole.png']);
    const detail = await api.invoke('images.get', { id: list.items[0].id });
    expect(detail.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(detail.width).toBe(32);
    const thumb = await api.resolveFile('thumb', list.items[0].id);
    expect(thumb && thumb.file && existsSync(thumb.file)).toBeTruthy();

    // Importing the same folder again imports nothing twice.
    const again = await api.invoke('import.run', { source: { kind: 'paths', paths: [src] } });
    expect(again.imported).toBe(0);
    expect(again.duplicates).toBe(4);
  });

  it('two imports of the same files at once record each file once', async () => {
    const files: string[] = [];
    for (let k = 0; k < 10; k++) {
      files.push(join(tmp.dir, `c${k}.png`));
      await makePng(files[k], { seed: k + 1 });
    }
    const [a, b] = await Promise.all([
      api.invoke('import.run', { source: { kind: 'paths', paths: files } }),
      api.invoke('import.run', { source: { kind: 'paths', paths: [...files].reverse() } }),
    ]);
    expect(a.imported + b.imported).toBe(10);
    expect(a.duplicates + b.duplicates).toBe(10);
    expect((await api.invoke('images.list', {})).total).toBe(10);
  });

  it('imports an MVTec layout with its labels and classes', async () => {
    const root = join(tmp.dir, 'mvtec');
    for (const d of ['train/good', 'test/good', 'test/crack', 'test/scratch', 'ground_truth/crack'])
      mkdirSync(join(root, d), { recursive: true });
    await makePng(join(root, 'train/good/000.png'), { seed: 1 });
    await makePng(join(root, 'train/good/001.png'), { seed: 2 });
    await makePng(join(root, 'test/good/000.png'), { seed: 3 });
    await makePng(join(root, 'test/crack/000.png'), { seed: 4 });
    await makePng(join(root, 'test/scratch/000.png'), { seed: 5 });
    writeFileSync(join(root, 'test/scratch/001.png'), '');
    const s = await api.invoke('import.run', { source: { kind: 'mvtec', root } });
    expect(s.imported).toBe(5);
    expect(s.labelled).toBe(5);
    expect(s.skipped.map((k) => [k.name, k.reason])).toEqual([['001.png', 'empty file']]);
    const info = await api.invoke('project.current', {});
    expect(info?.counts).toEqual({ good: 3, defect: 2, unlabelled: 0 });
    const classes = await api.invoke('classes.list', {});
    expect(classes.classes.map((c) => [c.name, c.count])).toEqual([
      ['crack', 1],
      ['scratch', 1],
    ]);
  });

  it('imports a folder-per-class layout and a CSV of path,label,class', async () => {
    const root = join(tmp.dir, 'byclass');
    for (const d of ['good', 'dent']) mkdirSync(join(root, d), { recursive: true });
    await makePng(join(root, 'good/g1.png'), { seed: 1 });
    await makePng(join(root, 'dent/d1.png'), { seed: 2 });
    const s1 = await api.invoke('import.run', { source: { kind: 'folders', root } });
    expect(s1).toMatchObject({ imported: 2, labelled: 2 });

    const csvDir = join(tmp.dir, 'csv');
    mkdirSync(csvDir);
    await makePng(join(csvDir, 'x.png'), { seed: 7 });
    await makePng(join(csvDir, 'y.png'), { seed: 8 });
    writeFileSync(
      join(csvDir, 'labels.csv'),
      'path,label,class\nx.png,good,\ny.png,defect,stain\nz.png,defect,stain\n',
    );
    const s2 = await api.invoke('import.run', { source: { kind: 'csv', file: join(csvDir, 'labels.csv') } });
    expect(s2.imported).toBe(2);
    expect(s2.skipped).toHaveLength(1);
    expect(s2.skipped[0].reason).toMatch(/missing/);
    const defects = await api.invoke('images.list', { filter: { label: 'defect' }, sort: 'name' });
    expect(defects.items.map((i) => [i.name, i.className])).toEqual([
      ['d1.png', 'dent'],
      ['y.png', 'stain'],
    ]);
  });

  it('a layout that does not match says what was expected', async () => {
    const r = await api.call('import.run', { source: { kind: 'mvtec', root: join(tmp.dir, 'nothing') } });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toMatch(/MVTec/);
    const root = join(tmp.dir, 'noGood');
    mkdirSync(join(root, 'dent'), { recursive: true });
    const r2 = await api.call('import.run', { source: { kind: 'folders', root } });
    expect(r2.ok).toBe(false);
    if (!r2.ok)
      expect(r2.error).toMatchObject({
        code: 'invalid_input',
        message: expect.stringMatching(/no folder of good images/),
      });
  });

  it('serves a TIFF as PNG (browsers cannot show TIFF) and a missing file as nothing', async () => {
    const tif = join(tmp.dir, 'scan.tif');
    await sharp({ create: { width: 20, height: 10, channels: 3, background: { r: 9, g: 9, b: 9 } } })
      .tiff()
      .toFile(tif);
    const s = await api.invoke('import.run', { source: { kind: 'paths', paths: [tif] } });
    const served = await api.resolveFile('image', s.importedIds[0]);
    expect(served?.contentType).toBe('image/png');
    // Converted once into the project's previews/ and served from there.
    expect(served!.file).toMatch(/previews[\\/][0-9a-f]{64}\.png$/);
    expect((await sharp(served!.file!).metadata()).width).toBe(20);
    rmSync(tif);
    expect(await api.resolveFile('image', s.importedIds[0])).toBeNull();
    expect((await api.invoke('images.get', { id: s.importedIds[0] })).status).toBe('missing');
  });

  it('uploads dropped files (browser mode) into the project and checks them the same way', async () => {
    await makePng(join(tmp.dir, 'drop.png'));
    const data = readFileSync(join(tmp.dir, 'drop.png')).toString('base64');
    const s = await api.invoke('import.upload', {
      files: [
        { name: 'drop.png', dataBase64: data },
        { name: '../../evil.png', dataBase64: Buffer.from('nope').toString('base64') },
      ],
    });
    expect(s.imported).toBe(1);
    expect(s.skipped.map((k) => k.name)).toEqual(['evil.png']);
    const info = await api.invoke('project.current', {});
    const img = await api.invoke('images.get', { id: s.importedIds[0] });
    expect(img.path.startsWith(info!.path)).toBe(true);
  });

  describe('decoding that cannot exhaust memory (issue 13, finding 3)', () => {
    it('imports a 9000x9000 PNG and serves its thumbnail without decoding it at full size', async () => {
      const big = join(tmp.dir, 'big.png');
      await sharp({
        create: { width: 9000, height: 9000, channels: 3, background: { r: 40, g: 90, b: 140 } },
      })
        .png()
        .toFile(big);
      const before = process.memoryUsage().rss;
      let peak = before;
      const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
      try {
        const s = await api.invoke('import.run', { source: { kind: 'paths', paths: [big] } });
        expect(s.imported).toBe(1);
        const thumbs = await Promise.all(
          Array.from({ length: 6 }, () => api.resolveFile('thumb', s.importedIds[0])),
        );
        expect((await sharp(thumbs[0]!.file!).metadata()).width).toBe(256);
      } finally {
        clearInterval(timer);
      }
      // Full-size RGB is 243 MB; before the fix the process grew by about 250 MB.
      expect((peak - before) / 1024 ** 2).toBeLessThan(120);
    });

    it('runs every decode through one bounded queue, however many requests come at once', async () => {
      const files = await Promise.all(
        Array.from({ length: 6 }, async (_, k) => {
          const f = join(tmp.dir, `q${k}.tif`);
          await sharp({
            create: { width: 1500, height: 1500, channels: 3, background: { r: k * 30, g: 9, b: 9 } },
          })
            .tiff()
            .toFile(f);
          return f;
        }),
      );
      const s = await api.invoke('import.run', { source: { kind: 'paths', paths: files } });
      let most = 0;
      const timer = setInterval(() => (most = Math.max(most, decodeQueueLoad().active)), 1);
      try {
        await Promise.all(s.importedIds.map((id) => api.resolveFile('image', id)));
      } finally {
        clearInterval(timer);
      }
      expect(most).toBeGreaterThan(0);
      expect(most).toBeLessThanOrEqual(DECODE_CONCURRENCY);
    });

    it('converts a TIFF once and serves the cached preview afterwards', async () => {
      const tif = join(tmp.dir, 'scan.tif');
      await sharp({ create: { width: 30, height: 20, channels: 3, background: { r: 9, g: 9, b: 9 } } })
        .tiff()
        .toFile(tif);
      const s = await api.invoke('import.run', { source: { kind: 'paths', paths: [tif] } });
      const first = await api.resolveFile('image', s.importedIds[0]);
      const made = statSync(first!.file!).mtimeMs;
      await new Promise((r) => setTimeout(r, 30));
      const second = await api.resolveFile('image', s.importedIds[0]);
      expect(second!.file).toBe(first!.file);
      expect(statSync(second!.file!).mtimeMs).toBe(made);
    });
  });
});
