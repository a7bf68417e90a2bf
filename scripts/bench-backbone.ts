/**
 * Speed probe of feature extraction: cold-cache throughput (both pyramid levels) and cached
 * re-extraction, on real images, for one or more backbones in the same run (ratios to the
 * first one printed at the end: timings on a shared machine only compare within one run).
 *
 *   npx tsx scripts/bench-backbone.ts [--images DIR] [--count 200] [--workers 2] [--size 224]
 *       [--backbone mobilenet:tfjs,mobilenet,resnet50:tfjs,resnet50]
 * Each entry is a backbone, optionally with its runtime (auto when absent: onnxruntime when
 * installed). SWAN_ORT_THREADS sets onnxruntime's threads per worker.
 *
 * Prints the machine load next to the numbers: other processes on a 2-core machine halve them.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { backboneSpecFor } from '../src-main/engine/backbone';
import { createFeatureExtractor } from '../src-main/engine/features';
import type { RuntimePreference } from '../src-main/engine/features/runtime';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '/work/shared/datasets/elpv/images' },
    count: { type: 'string', default: '200' },
    workers: { type: 'string', default: '2' },
    size: { type: 'string', default: '224' },
    levels: { type: 'string', default: '2' },
    backend: { type: 'string', default: 'auto' },
    backbone: { type: 'string', default: 'mobilenet' },
  },
});

const count = Number(values.count);
const workers = Number(values.workers);
const size = Number(values.size);
const levels = Number(values.levels);
const backend = values.backend as 'auto' | 'wasm' | 'cpu';
const backbones = values.backbone.split(',').map((b) => b.trim());

const listed = (await readdir(values.images))
  .filter((f) => /\.(png|jpe?g|bmp|tiff?)$/i.test(f))
  .sort()
  .map((f) => ({ path: path.join(values.images, f) }));
const files = listed.slice(0, count);
// Images outside the measured set that start the workers (and load the weights) first.
const warmUp = listed.slice(count, count + Math.max(workers, 1) * 2);
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

interface Measured {
  name: string;
  cold: number;
  perCpuSecond: number;
  cached: number;
}

async function measure(name: string): Promise<Measured> {
  const [backbone, runtime] = name.split(':') as [string, RuntimePreference | undefined];
  const cacheDir = await mkdtemp(path.join(os.tmpdir(), 'swan-bench-'));
  try {
    const t0 = performance.now();
    const fx = await createFeatureExtractor({
      spec: backboneSpecFor(backbone, { inputSize: size }),
      levels,
      cacheDir,
      workers,
      backend,
      runtime,
    });
    const startup = (performance.now() - t0) / 1000;
    console.log(`\n[${name}] backend: ${fx.backend.description}`);
    console.log(
      `images: ${files.length} from ${values.images}; input ${size}, levels ${levels}, workers ${workers}`,
    );
    let t = performance.now();
    await fx.extract(warmUp);
    console.log(`runtime: ${fx.runtime}`);
    console.log(
      `startup: cache key ${startup.toFixed(2)} s, workers + weights + ${warmUp.length} warm-up images ` +
        `${((performance.now() - t) / 1000).toFixed(2)} s; load average before: ${load()}`,
    );

    t = performance.now();
    // CPU time of this process covers its worker threads: images per CPU-second is the number
    // that does not depend on what else the machine runs.
    const cpu0 = process.cpuUsage();
    const cold = await fx.extract(files);
    const coldS = (performance.now() - t) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const cpuS = (cpu.user + cpu.system) / 1e6;
    const ok = cold.filter((r) => r.ok).length;
    console.log(
      `cold cache: ${(files.length / coldS).toFixed(2)} images/s (${coldS.toFixed(2)} s, ${ok} ok); load average: ${load()}`,
    );
    console.log(
      `  cpu: ${cpuS.toFixed(2)} s = ${(files.length / cpuS).toFixed(2)} images per CPU-second ` +
        `(${(cpuS / coldS).toFixed(2)} cores busy of ${os.cpus().length})`,
    );

    t = performance.now();
    const warm = await fx.extract(files);
    const warmS = (performance.now() - t) / 1000;
    console.log(
      `cached:     ${(files.length / warmS).toFixed(1)} images/s (${warmS.toFixed(3)} s, ${warm.filter((r) => r.ok).length} ok)`,
    );
    await fx.close();
    return {
      name,
      cold: files.length / coldS,
      perCpuSecond: files.length / cpuS,
      cached: files.length / warmS,
    };
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
}

const results: Measured[] = [];
for (const b of backbones) results.push(await measure(b));
if (results.length > 1) {
  const base = results[0]!;
  console.log(`\nratios to ${base.name} (same run):`);
  for (const r of results.slice(1)) {
    console.log(
      `  ${r.name}: cold ${(r.cold / base.cold).toFixed(3)}x images/s, ` +
        `${(r.perCpuSecond / base.perCpuSecond).toFixed(3)}x images per CPU-second ` +
        `(${(base.perCpuSecond / r.perCpuSecond).toFixed(1)}x the CPU per image)`,
    );
  }
}
