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
import * as tf from '@tensorflow/tfjs';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendPreference = 'auto' | 'wasm' | 'cpu';

export interface BackendInfo {
  name: BackendName;
  gpu: boolean;
  native: boolean;
  description: string;
}

/** Imports a module by name; injectable so tests can simulate missing native packages. */
export type ModuleLoader = (specifier: string) => Promise<unknown>;

const defaultLoader: ModuleLoader = (specifier) => import(specifier);

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

async function selectBackend(prefer: BackendPreference, loader: ModuleLoader): Promise<BackendInfo> {
  const notes: string[] = [];
  if (prefer === 'cpu') return useCpu('requested');
  if (prefer === 'auto') {
    const gpu = await tryNative('@tensorflow/tfjs-node-gpu', loader, notes);
    if (gpu) {
      return {
        name: 'tensorflow',
        gpu: true,
        native: true,
        description: 'tensorflow (native, GPU via @tensorflow/tfjs-node-gpu)',
      };
    }
    const node = await tryNative('@tensorflow/tfjs-node', loader, notes);
    if (node) {
      return {
        name: 'tensorflow',
        gpu: false,
        native: true,
        description: 'tensorflow (native CPU via @tensorflow/tfjs-node)',
      };
    }
  }
  await loader('@tensorflow/tfjs-backend-wasm');
  const ok = await tf.setBackend('wasm');
  await tf.ready();
  // tfjs falls back to another backend silently when wasm fails to initialise.
  if (!ok || tf.getBackend() !== 'wasm') {
    throw new Error(
      `The wasm backend did not start (TF.js is on '${tf.getBackend()}'). ` +
        'Set SWAN_BACKEND=cpu to run on the slow pure-JS backend.',
    );
  }
  const why = notes.length > 0 ? `; no native backend: ${notes.join('; ')}` : '';
  return {
    name: 'wasm',
    gpu: false,
    native: false,
    description: `wasm (WebAssembly, single-threaded CPU${why})`,
  };
}

async function useCpu(reason: string): Promise<BackendInfo> {
  await tf.setBackend('cpu');
  await tf.ready();
  return { name: 'cpu', gpu: false, native: false, description: `cpu (pure JavaScript, ${reason})` };
}

/**
 * A native package registers the 'tensorflow' backend into the tfjs-core instance it resolves;
 * if npm gave it a different copy than ours, our tf never sees it, so check our registry.
 */
async function tryNative(pkg: string, loader: ModuleLoader, notes: string[]): Promise<boolean> {
  try {
    await loader(pkg);
  } catch (err) {
    const code = (err as { code?: string }).code;
    const missing = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
    notes.push(missing ? `${pkg} not installed` : `${pkg} not loadable (${firstLine(err)})`);
    return false;
  }
  if (tf.findBackendFactory('tensorflow') == null) {
    notes.push(`${pkg} loaded but registered into another copy of @tensorflow/tfjs-core`);
    return false;
  }
  try {
    const ok = await tf.setBackend('tensorflow');
    await tf.ready();
    if (ok && tf.getBackend() === 'tensorflow') return true;
    notes.push(`${pkg} loaded but the tensorflow backend did not start`);
  } catch (err) {
    notes.push(`${pkg} failed to start (${firstLine(err)})`);
  }
  return false;
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0] ?? msg;
}
