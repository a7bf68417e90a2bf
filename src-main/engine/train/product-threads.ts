/**
 * onnxruntime's intra-op threads for the training products: two where the machine has a second
 * core (faster in wall time when it is free: docs/benchmarks/speed.md), one where it has not.
 * Fixed for the process, not chosen as the products run: one- and two-thread products can
 * differ in rounding, and the same seed must give the same model on the same machine.
 */
import os from 'node:os';

export type ProductThreads = 1 | 2;

/** SWAN_HEAD_THREADS=1|2 (benchmarks compare them); default two where there are two cores. */
export function trainingThreads(): ProductThreads {
  const env = process.env.SWAN_HEAD_THREADS;
  if (env === '1' || env === '2') return Number(env) as ProductThreads;
  if (env === undefined || env === '') return os.availableParallelism() >= 2 ? 2 : 1;
  throw new Error(`SWAN_HEAD_THREADS must be 1 or 2, not '${env}'.`);
}
