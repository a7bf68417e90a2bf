/**
 * Picks the fastest TF.js backend present at run time and says which one it is.
 *
 * Order: tfjs-node-gpu (CUDA) > tfjs-node (native CPU) > wasm. The pure-JS 'cpu' backend is
 * ~30x slower than wasm on convolutions, so it is used only when asked for (tests use it:
 * it has every gradient kernel, wasm lacks the conv filter gradients).
 *
 * The native packages are optional dependencies that fail to install on machines without
 * libtensorflow: they are imported dynamically and their absence is not an error.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendPreference = 'auto' | 'wasm' | 'cpu';

export interface BackendInfo {
  name: BackendName;
  gpu: boolean;
  native: boolean;
  description: string;
  /** Every backend considered, in order, and what became of it (swan doctor prints them). */
  candidates?: BackendCandidate[];
}

export interface BackendCandidate {
  /** backendTag of the candidate: 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'. */
  tag: string;
  /** The package that provides it ('' for the pure-JS cpu backend, which is part of tfjs). */
  pkg: string;
  chosen: boolean;
  /** Why it was (not) chosen: 'not installed', 'CUDA/cuDNN not found (...)', 'chosen'... */
  outcome: string;
}

/** Imports a module by name; injectable so tests can simulate missing native packages. */
export type ModuleLoader = (specifier: string) => Promise<unknown>;

const defaultLoader: ModuleLoader = async (specifier) => {
  if (specifier.startsWith('@tensorflow/tfjs-node')) assertNativeBinding(specifier);
  return import(specifier);
};

/**
 * A tfjs-node package whose install could not download libtensorflow has no binding file, and
 * importing it anyway runs most of its JavaScript (a few hundred ms of CPU at every start)
 * before it throws; look for the file first. An absent package is left to the import to report.
 */
function assertNativeBinding(pkg: string): void {
  let root: string;
  try {
    root = path.dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`));
  } catch {
    return;
  }
  // node-pre-gyp's module_path: lib/napi-v<N>/tfjs_binding.node.
  const lib = path.join(root, 'lib');
  const found =
    existsSync(lib) &&
    readdirSync(lib).some((d) => d.startsWith('napi-v') && existsSync(path.join(lib, d, 'tfjs_binding.node')));
  if (!found) throw new Error(`The native addon module (tfjs_binding.node) is not in ${lib}/napi-v*`);
}

let current: Promise<BackendInfo> | null = null;

/**
 * The backend as it goes into feature-cache keys and model records: kernels differ between
 * backends (and between native CPU and GPU) in their last bits, so features computed on one are
 * not reused on another.
 */
export function backendTag(info: Pick<BackendInfo, 'name' | 'gpu'>): string {
  return info.gpu ? `${info.name}-gpu` : info.name;
}

/**
 * Sets up the backend once per thread; later calls return the first result whatever they ask
 * (switching backends mid-run would orphan every tensor already allocated).
 */
export function initBackend(
  opts: { prefer?: BackendPreference } = {},
  loader: ModuleLoader = defaultLoader,
): Promise<BackendInfo> {
  if (!current) {
    current = selectBackend(resolvePreference(opts.prefer), loader);
    // A failed setup must not poison later attempts (e.g. after the user installs a package).
    current.catch(() => {
      current = null;
    });
  }
  return current;
}

/** Forget the chosen backend so a test can run the selection again. Not for app code. */
export function resetBackendForTests(): void {
  current = null;
}

function resolvePreference(prefer: BackendPreference | undefined): BackendPreference {
  const env = process.env.SWAN_BACKEND;
  if (env === 'cpu' || env === 'wasm' || env === 'auto') return env;
  return prefer ?? 'auto';
}

const GPU_PKG = '@tensorflow/tfjs-node-gpu';
const NODE_PKG = '@tensorflow/tfjs-node';
const WASM_PKG = '@tensorflow/tfjs-backend-wasm';

async function selectBackend(prefer: BackendPreference, loader: ModuleLoader): Promise<BackendInfo> {
  const candidates: BackendCandidate[] = [];
  const skip = (tag: string, pkg: string, outcome: string) =>
    candidates.push({ tag, pkg, chosen: false, outcome });
  const cpuNote = 'used only when asked for (SWAN_BACKEND=cpu): ~30x slower than wasm on convolutions';
  if (prefer === 'cpu') {
    const why = 'not tried: the cpu backend was asked for';
    skip('tensorflow-gpu', GPU_PKG, why);
    skip('tensorflow', NODE_PKG, why);
    skip('wasm', WASM_PKG, why);
    candidates.push({ tag: 'cpu', pkg: '', chosen: true, outcome: 'chosen (asked for)' });
    return { ...(await useCpu('requested')), candidates };
  }
  if (prefer === 'auto') {
    const gpu = await tryNative(GPU_PKG, loader);
    candidates.push({ tag: 'tensorflow-gpu', pkg: GPU_PKG, chosen: gpu.ok, outcome: gpu.outcome });
    if (gpu.ok) {
      skip('tensorflow', NODE_PKG, `not tried: ${GPU_PKG} came first`);
      skip('wasm', WASM_PKG, 'not needed: a native backend started');
      skip('cpu', '', cpuNote);
      return {
        name: 'tensorflow',
        gpu: true,
        native: true,
        description: 'tensorflow (native, GPU via @tensorflow/tfjs-node-gpu)',
        candidates,
      };
    }
    const node = await tryNative(NODE_PKG, loader);
    candidates.push({ tag: 'tensorflow', pkg: NODE_PKG, chosen: node.ok, outcome: node.outcome });
    if (node.ok) {
      skip('wasm', WASM_PKG, 'not needed: a native backend started');
      skip('cpu', '', cpuNote);
      return {
        name: 'tensorflow',
        gpu: false,
        native: true,
        description: 'tensorflow (native CPU via @tensorflow/tfjs-node)',
        candidates,
      };
    }
  } else {
    const why = 'not tried: the wasm backend was asked for (SWAN_BACKEND=wasm)';
    skip('tensorflow-gpu', GPU_PKG, why);
    skip('tensorflow', NODE_PKG, why);
  }
  await loader(WASM_PKG);
  const ok = await tf.setBackend('wasm');
  await tf.ready();
  // tfjs falls back to another backend silently when wasm fails to initialise.
  if (!ok || tf.getBackend() !== 'wasm') {
    throw new Error(
      `The wasm backend did not start (TF.js is on '${tf.getBackend()}'). ` +
        'Set SWAN_BACKEND=cpu to run on the slow pure-JS backend.',
    );
  }
  candidates.push({ tag: 'wasm', pkg: WASM_PKG, chosen: true, outcome: 'chosen' });
  skip('cpu', '', cpuNote);
  const notes = candidates.filter((c) => c.tag.startsWith('tensorflow')).map((c) => `${c.pkg} ${c.outcome}`);
  const why = prefer === 'auto' ? `; no native backend: ${notes.join('; ')}` : '';
  return {
    name: 'wasm',
    gpu: false,
    native: false,
    description: `wasm (WebAssembly, single-threaded CPU${why})`,
    candidates,
  };
}

async function useCpu(reason: string): Promise<BackendInfo> {
  await tf.setBackend('cpu');
  await tf.ready();
  return { name: 'cpu', gpu: false, native: false, description: `cpu (pure JavaScript, ${reason})` };
}

/**
 * Why a native package did not load, in the user's terms: the package is absent, its binding
 * (libtensorflow, downloaded at install) is, or the GPU build cannot find CUDA/cuDNN.
 */
export function classifyLoadError(pkg: string, err: unknown): string {
  const code = (err as { code?: string }).code;
  const msg = firstLine(err);
  if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && msg.includes(`'${pkg}'`))
    return 'not installed';
  if (/libcud|cudnn|cublas|cufft|curand|cusolver|cusparse|nvrtc|nvidia/i.test(msg))
    return `CUDA/cuDNN not found (${msg})`;
  if (/libtensorflow|tfjs_binding|napi-v\d/i.test(msg))
    return `libtensorflow missing: its install step did not download it (${msg})`;
  if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return 'not installed';
  return `not loadable (${msg})`;
}

/**
 * A native package registers the 'tensorflow' backend into the tfjs-core instance it resolves;
 * if npm gave it a different copy than ours, our tf never sees it, so check our registry.
 */
async function tryNative(pkg: string, loader: ModuleLoader): Promise<{ ok: boolean; outcome: string }> {
  try {
    await loader(pkg);
  } catch (err) {
    return { ok: false, outcome: classifyLoadError(pkg, err) };
  }
  if (tf.findBackendFactory('tensorflow') == null)
    return { ok: false, outcome: 'loaded but registered into another copy of @tensorflow/tfjs-core' };
  try {
    const ok = await tf.setBackend('tensorflow');
    await tf.ready();
    if (ok && tf.getBackend() === 'tensorflow') return { ok: true, outcome: 'chosen' };
    return { ok: false, outcome: 'loaded but the tensorflow backend did not start' };
  } catch (err) {
    return { ok: false, outcome: `failed to start (${firstLine(err)})` };
  }
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0] ?? msg;
}
