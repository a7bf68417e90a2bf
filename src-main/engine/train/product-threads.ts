/**
 * Two onnxruntime threads for the training products while a second core is free, one while it
 * is not. On a busy machine the second thread waits for a core and only adds CPU (the step
 * costs more), on an idle one it takes the products' wall time down by about a third; which one
 * holds is seen from the products themselves: with both threads running, a product takes more
 * process CPU than wall time.
 */
import os from 'node:os';

/** Intra-op threads of the training products: a count, or 'auto' (two while they run in parallel). */
export type ProductThreads = 1 | 2 | 'auto';

/** SWAN_HEAD_THREADS=1|2|auto (benchmarks compare them); default auto where there are two cores. */
export function trainingThreads(): ProductThreads {
  const env = process.env.SWAN_HEAD_THREADS;
  if (env === '1' || env === '2') return Number(env) as 1 | 2;
  if (env === 'auto' || env === undefined || env === '') return os.availableParallelism() >= 2 ? 'auto' : 1;
  throw new Error(`SWAN_HEAD_THREADS must be 1, 2 or auto, not '${env}'.`);
}

/** Products measured on two threads before they are judged, and products on one before two are tried again. */
const JUDGE_AFTER = 8;
const RETRY_AFTER = 64;
/** Process CPU over wall time of the two-thread products below which the second thread is not getting a core. */
const MIN_PARALLELISM = 1.3;

type AsyncFn = (...args: never[]) => Promise<unknown>;

const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/**
 * Routes each product to the one- or two-thread variant of the same function: two while they
 * run in parallel (checked every JUDGE_AFTER products), else one for RETRY_AFTER products.
 */
export class ThreadChooser {
  private two = true;
  private calls = 0;
  private cpu = 0;
  private wall = 0;

  route<F extends AsyncFn>(one: F, two: F): F {
    return (async (...args: Parameters<F>) => {
      if (!this.two) {
        if (++this.calls >= RETRY_AFTER) [this.two, this.calls] = [true, 0];
        return one(...args);
      }
      const c0 = cpuMs();
      const w0 = performance.now();
      const out = await two(...args);
      this.cpu += cpuMs() - c0;
      this.wall += performance.now() - w0;
      if (++this.calls >= JUDGE_AFTER) {
        this.two = this.cpu >= MIN_PARALLELISM * this.wall;
        [this.calls, this.cpu, this.wall] = [0, 0, 0];
      }
      return out;
    }) as F;
  }

  /** Whether the next product runs on two threads. */
  get parallel(): boolean {
    return this.two;
  }
}
