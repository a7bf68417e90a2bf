/**
 * `swan doctor`: what a user checks before filing a bug. The backend that would be chosen and
 * why the others were not, whether full mode can run, the GPU, the backbones found and where,
 * and the optional runtimes. Every probe reports its own failure; the command itself fails only
 * when no backend starts at all.
 */
import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { initBackend, type BackendInfo } from '../../engine/backend';
import { detectGpu, fullModeSupport } from '../../engine/capabilities';
import { backboneSpecFor, readModelArtifacts } from '../../engine/backbone';
import { defaultCacheDir } from '../../engine/features/cache';

const require = createRequire(import.meta.url);

/** Version of an installed package, or null when it is not installed. */
function installedVersion(pkg: string): string | null {
  try {
    return (require(`${pkg}/package.json`) as { version?: string }).version ?? '?';
  } catch {
    return null;
  }
}

interface BackboneCheck {
  id: string;
  dir: string;
  from: string;
  status: string;
}

async function folderBytes(dir: string, files: string[]): Promise<number> {
  const sizes = await Promise.all(files.map((f) => stat(path.join(dir, f)).then((s) => s.size)));
  return sizes.reduce((a, b) => a + b, 0);
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** A TF.js layers folder: model.json and every shard it lists, read and size-checked. */
async function checkLayersFolder(dir: string): Promise<string> {
  if (!existsSync(path.join(dir, 'model.json'))) return `not found (no model.json in ${dir})`;
  try {
    const a = await readModelArtifacts(dir);
    const bytes = (a.weightData as ArrayBuffer).byteLength;
    return `ok (model.json, ${a.weightSpecs?.length ?? 0} weight tensors, ${mb(bytes)})`;
  } catch (err) {
    return `damaged: ${(err as Error).message}`;
  }
}

/** ResNet-50 v2: one .npy file per tensor under weights/ (backbone/resnet50-net.ts). */
async function checkNpyFolder(dir: string): Promise<string> {
  const weights = path.join(dir, 'weights');
  if (!existsSync(weights)) return `not found (no weights/ in ${dir})`;
  const files = (await readdir(weights)).filter((f) => f.endsWith('.npy'));
  if (files.length === 0) return `damaged: no .npy files in ${weights}`;
  return `found (${files.length} .npy weight files, ${mb(await folderBytes(weights, files))})`;
}

async function checkBackbones(): Promise<BackboneCheck[]> {
  // The folders the engine itself would load (backbone/index.ts backboneSpecFor).
  const backbones: { name: string; env: string; check: (dir: string) => Promise<string> }[] = [
    { name: 'mobilenet', env: 'SWAN_BACKBONE_DIR', check: checkLayersFolder },
    { name: 'resnet50', env: 'SWAN_RESNET50_DIR', check: checkNpyFolder },
    { name: 'resnet18', env: 'SWAN_RESNET18_DIR', check: checkLayersFolder },
  ];
  return Promise.all(
    backbones.map(async (b) => {
      const spec = backboneSpecFor(b.name);
      return {
        id: spec.id,
        dir: spec.modelDir,
        from: process.env[b.env] ? b.env : '../shared/models',
        status: await b.check(spec.modelDir),
      };
    }),
  );
}

/** Optional (ResNet-50 inference); a variable so that type checking does not require it. */
const ONNXRUNTIME = 'onnxruntime-node';

async function onnxruntimeStatus(): Promise<string> {
  const version = installedVersion(ONNXRUNTIME);
  if (!version) return 'not installed (optional)';
  try {
    const ort = (await import(ONNXRUNTIME)) as { listSupportedBackends?: () => { name: string }[] };
    const backends = ort.listSupportedBackends?.().map((b) => b.name) ?? [];
    return `${version}, loads${backends.length ? ` (execution providers: ${backends.join(', ')})` : ''}`;
  } catch (err) {
    return `${version}, does not load (${(err as Error).message.split('\n')[0]})`;
  }
}

function backendLines(info: BackendInfo): string[] {
  const lines = [`backend: ${info.description}`];
  for (const c of info.candidates ?? []) {
    const version = c.pkg ? installedVersion(c.pkg) : installedVersion('@tensorflow/tfjs');
    const what = c.pkg
      ? `${c.pkg}${version ? ` ${version}` : ''}`
      : `pure JavaScript (in @tensorflow/tfjs ${version})`;
    lines.push(`  ${c.chosen ? '*' : '-'} ${c.tag.padEnd(15)} ${what}: ${c.outcome}`);
  }
  return lines;
}

/** The report, one line each. */
export async function doctorReport(): Promise<string[]> {
  const lines = [
    `Swan Inspector doctor: node ${process.version}, ${os.platform()} ${os.arch()}, ${os.cpus().length} CPU cores`,
    `SWAN_BACKEND: ${process.env.SWAN_BACKEND ?? 'unset (auto: tfjs-node-gpu, then tfjs-node, then wasm)'}`,
  ];
  const info = await initBackend();
  lines.push(...backendLines(info));
  const full = fullModeSupport(info);
  lines.push(full.ok ? `full mode: available (${full.note})` : `full mode: refused. ${full.message}`);
  lines.push(`GPU: ${(await detectGpu()).description}`);
  lines.push('backbones:');
  for (const b of await checkBackbones())
    lines.push(`  ${b.id.padEnd(18)} ${b.dir} [${b.from}]: ${b.status}`);
  lines.push(`onnxruntime-node: ${await onnxruntimeStatus()}`);
  lines.push(`feature cache: ${defaultCacheDir()}${process.env.SWAN_CACHE_DIR ? ' [SWAN_CACHE_DIR]' : ''}`);
  return lines;
}

export async function runDoctor(): Promise<void> {
  for (const line of await doctorReport()) console.log(line);
}
