/**
 * Which runtime runs the frozen backbone: onnxruntime-node when it is installed and knows the
 * backbone (multi-threaded, made for inference), TF.js otherwise. Chosen once in the thread
 * that owns the extractor; the workers are told the choice (and the ONNX file) at start.
 */
import os from 'node:os';
import { ensureOnnxModel, onnxruntimeVersion, onnxSupports } from '../backbone/onnx-runtime';
import type { BackboneSpec } from '../types';
import { EngineError } from '../types';

export type RuntimePreference = 'auto' | 'tfjs' | 'onnxruntime';

export type RuntimeChoice = { description: string } & (
  { kind: 'tfjs' } | { kind: 'onnxruntime'; modelPath: string; threads: number }
);

function resolvePreference(prefer: RuntimePreference | undefined): RuntimePreference {
  const env = process.env.SWAN_RUNTIME;
  if (env === 'auto' || env === 'tfjs' || env === 'onnxruntime') return env;
  return prefer ?? 'auto';
}

/**
 * onnxruntime threads per worker: the cores shared out, at least one ($SWAN_ORT_THREADS wins).
 * On 2 cores two one-thread workers beat one two-thread worker for both backbones (measured,
 * docs/benchmarks/backbone-speed.md): a session's thread pool costs CPU the images do not get.
 */
export function ortThreads(workers: number): number {
  const env = Number(process.env.SWAN_ORT_THREADS);
  if (Number.isInteger(env) && env > 0) return env;
  return Math.max(1, Math.floor(os.cpus().length / Math.max(1, workers)));
}

export async function chooseRuntime(
  spec: BackboneSpec,
  opts: { prefer?: RuntimePreference; cacheDir: string; workers: number },
): Promise<RuntimeChoice> {
  const prefer = resolvePreference(opts.prefer);
  if (prefer === 'tfjs') return { kind: 'tfjs', description: 'tfjs (requested)' };
  const ort = await onnxruntimeVersion();
  const problem = !onnxSupports(spec)
    ? `onnxruntime has no graph for ${spec.id}${spec.fineTuned ? ' (fine-tuned)' : ''}`
    : ort.version === null
      ? ort.why
      : null;
  if (problem) {
    if (prefer === 'onnxruntime') throw new EngineError(`Runtime onnxruntime was asked for, but ${problem}.`);
    return { kind: 'tfjs', description: `tfjs (${problem})` };
  }
  const modelPath = await ensureOnnxModel(spec, opts.cacheDir);
  const threads = ortThreads(opts.workers);
  const description = `onnxruntime-node ${ort.version} (CPU, ${threads} thread${threads === 1 ? '' : 's'} per worker)`;
  return { kind: 'onnxruntime', modelPath, threads, description };
}
