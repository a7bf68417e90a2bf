/**
 * What this machine can run: the backend chosen, whether full mode (backbone fine-tuning) is
 * allowed on it, and the GPU when there is one. Read by `trainModel`, `swan doctor` and the
 * app's `system.info` (through the engine worker).
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { backendTag, initBackend, type BackendInfo, type BackendPreference } from './backend';

export type FullModeSupport = { ok: true; note: string } | { ok: false; message: string };

/** What to install for full mode; said wherever full mode is refused. */
export const FULL_MODE_INSTALL =
  'install @tensorflow/tfjs-node-gpu (an NVIDIA GPU with CUDA 11.2 and cuDNN 8.1) or @tensorflow/tfjs-node ' +
  '(native CPU) with `npm install @tensorflow/tfjs-node-gpu` (or -node) on a machine that can download ' +
  'libtensorflow, then check with `npm run swan -- doctor`';

/**
 * Full mode needs the gradients of every convolution: the native backend has them, and so does the
 * pure-JS cpu backend (hours at the paper's recipe, but right for tests with tiny inputs); the
 * wasm backend has no conv filter gradient (tfjs-notes.md).
 */
export function fullModeSupport(info: Pick<BackendInfo, 'name' | 'gpu'>): FullModeSupport {
  if (info.name === 'tensorflow')
    return { ok: true, note: info.gpu ? 'native TensorFlow on the GPU' : 'native TensorFlow on the CPU' };
  if (info.name === 'cpu')
    return {
      ok: true,
      note: 'pure-JS cpu backend (asked for): every gradient, but very slow; tiny inputs and few steps only',
    };
  return {
    ok: false,
    message:
      `Full mode (backbone fine-tuning) needs a native TensorFlow backend, and this machine runs on ${info.name}, ` +
      `which cannot train convolutions: ${FULL_MODE_INSTALL}. Fast mode (frozen backbone) runs here.`,
  };
}

export interface GpuInfo {
  found: boolean;
  /** e.g. "NVIDIA GeForce RTX 3060, driver 535.104, 12288 MiB", or why none was found. */
  description: string;
}

const run = promisify(execFile);

/** The NVIDIA GPUs the driver reports (nvidia-smi, else /proc/driver/nvidia); CUDA needs one. */
export async function detectGpu(): Promise<GpuInfo> {
  try {
    const { stdout } = await run(
      'nvidia-smi',
      ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'],
      { timeout: 5000, windowsHide: true },
    );
    const gpus = stdout
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .map((l) => {
        const [name, driver, memory] = l.split(',').map((x) => x.trim());
        return `${name}, driver ${driver}, ${memory}`;
      });
    if (gpus.length > 0) return { found: true, description: gpus.join('; ') };
  } catch {
    // no nvidia-smi, or no driver: try the kernel's view below
  }
  const procDir = '/proc/driver/nvidia/gpus';
  try {
    const entries = await readdir(procDir);
    const models = await Promise.all(
      entries.map(async (e) => {
        const text = await readFile(path.join(procDir, e, 'information'), 'utf8');
        return /^Model:\s*(.+)$/m.exec(text)?.[1]?.trim() ?? e;
      }),
    );
    if (models.length > 0) return { found: true, description: `${models.join('; ')} (nvidia-smi not found)` };
  } catch {
    // no NVIDIA kernel driver
  }
  return {
    found: false,
    description: 'no NVIDIA GPU found (nvidia-smi not on PATH, no NVIDIA kernel driver)',
  };
}

export interface SystemInfo {
  backend: { tag: string; description: string; gpu: boolean; native: boolean };
  fullMode: FullModeSupport;
  gpu: GpuInfo;
}

/** The backend this thread runs on (chosen once), what full mode says about it, and the GPU. */
export async function systemInfo(prefer?: BackendPreference): Promise<SystemInfo> {
  const info = await initBackend({ prefer });
  return {
    backend: { tag: backendTag(info), description: info.description, gpu: info.gpu, native: info.native },
    fullMode: fullModeSupport(info),
    gpu: await detectGpu(),
  };
}
