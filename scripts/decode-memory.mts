/**
 * Memory of the app process while it imports one large image and serves its thumbnail and
 * preview: prints the resident set before, the peak while importing, and after.
 *   node --import tsx scripts/decode-memory.mts [side=9000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { ApiService } from '../src-main/api/service';

const side = Number(process.argv[2] ?? 9000);
const dir = mkdtempSync(join(tmpdir(), 'swan-mem-'));
const png = join(dir, 'big.png');
await sharp({ create: { width: side, height: side, channels: 3, background: { r: 40, g: 90, b: 140 } } })
  .png()
  .toFile(png);
const api = new ApiService({ projectsRoot: join(dir, 'projects') });
await api.invoke('project.create', { name: 'mem' });
const mb = (n: number) => (n / 1024 ** 2).toFixed(0);
global.gc?.();
const before = process.memoryUsage().rss;
let peak = before;
const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
const s = await api.invoke('import.run', {
  source: { kind: 'paths', paths: [png, png.replace('big', 'big')] },
});
const importPeak = peak;
const id = s.importedIds[0];
await Promise.all(Array.from({ length: 8 }, () => api.resolveFile('thumb', id)));
await api.resolveFile('image', id);
clearInterval(timer);
console.log(
  `${side}x${side} PNG: rss before ${mb(before)} MB, peak during import ${mb(importPeak)} MB, ` +
    `peak with 8 thumbnail + 1 image requests ${mb(peak)} MB (+${mb(peak - before)} MB)`,
);
await api.close();
rmSync(dir, { recursive: true, force: true });
