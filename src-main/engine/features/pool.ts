/**
 * A pool of feature workers (worker_threads). Each worker loads the backbone once; batches go
 * to the least busy worker, at most two in flight per worker so that a worker decodes its next
 * batch while it computes the current one.
 *
 * How the worker script is found:
 * - Development and tests (this file runs as .ts under tsx or vitest): Node cannot start a .ts
 *   worker, so the worker starts worker-bootstrap.mjs, which registers tsx in the thread and
 *   imports worker.ts.
 * - Packaged app (electron-vite): worker.ts must be a separate bundle entry emitted beside the
 *   main bundle as feature-worker.js, e.g. in electron.vite.config.ts
 *     main: { build: { rollupOptions: { input: {
 *       index: ..., 'engine-worker': ...,
 *       'feature-worker': resolve(__dirname, 'src-main/engine/features/worker.ts') } } } }
 *   with @tensorflow/* and sharp left external (externalizeDepsPlugin) so that the wasm binary
 *   and libvips are found in node_modules. (electron-vite's `?nodeWorker` import suffix is the
 *   alternative.) $SWAN_FEATURE_WORKER overrides the path of the built worker script.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { BackendInfo, BackendPreference } from '../backend';
import type { BackboneSpec } from '../types';
import type { RuntimeChoice } from './runtime';
import { EngineError } from '../types';
import type { FromWorker, ToWorker, WorkItem, WorkResult } from './types';

const MAX_IN_FLIGHT = 2;

interface Job {
  id: number;
  items: WorkItem[];
  resolve: (r: WorkResult[]) => void;
}

interface Slot {
  worker: Worker;
  inFlight: Map<number, Job>;
  alive: boolean;
}

function workerScript(): { file: URL; workerData?: { entry: string } } {
  const override = process.env.SWAN_FEATURE_WORKER;
  if (override) return { file: pathToFileURL(override) };
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    return {
      file: new URL('./worker-bootstrap.mjs', here),
      workerData: { entry: new URL('./worker.ts', here).href },
    };
  }
  // Bundled: this code sits in an entry bundle beside feature-worker.js, or in a shared chunk
  // one folder below it.
  const candidates = [new URL('./feature-worker.js', here), new URL('../feature-worker.js', here)];
  const built = candidates.find((u) => existsSync(fileURLToPath(u)));
  if (!built) {
    throw new EngineError(
      `Feature worker script not found (looked for ${candidates.map((u) => fileURLToPath(u)).join(', ')})`,
    );
  }
  return { file: built };
}

export class WorkerPool {
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;

  private constructor(
    private readonly slots: Slot[],
    readonly backend: BackendInfo,
  ) {
    for (const slot of slots) this.watch(slot);
  }

  static async start(
    count: number,
    init: { spec: BackboneSpec; levels: number; backend: BackendPreference; runtime: RuntimeChoice },
  ): Promise<WorkerPool> {
    const script = workerScript();
    const workers = Array.from(
      { length: count },
      () => new Worker(script.file, { workerData: script.workerData }),
    );
    const ready = workers.map(
      (worker) =>
        new Promise<BackendInfo>((resolve, reject) => {
          const onMessage = (msg: FromWorker) => {
            if (msg.type === 'ready') resolve(msg.backend);
            else if (msg.type === 'init-error') reject(new EngineError(`Feature worker: ${msg.error}`));
          };
          worker.on('message', onMessage);
          worker.once('error', (err) =>
            reject(new EngineError(`Feature worker failed to start: ${err.message}`)),
          );
          worker.once('exit', (code) =>
            reject(new EngineError(`Feature worker exited during start (code ${code})`)),
          );
          const msg: ToWorker = { type: 'init', ...init };
          worker.postMessage(msg);
        }),
    );
    let infos: BackendInfo[];
    try {
      infos = await Promise.all(ready);
    } catch (err) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw err;
    }
    for (const w of workers) {
      w.removeAllListeners('message');
      w.removeAllListeners('error');
      w.removeAllListeners('exit');
    }
    const slots = workers.map((worker) => ({ worker, inFlight: new Map<number, Job>(), alive: true }));
    return new WorkerPool(slots, infos[0]!);
  }

  private watch(slot: Slot): void {
    slot.worker.on('message', (msg: FromWorker) => {
      if (msg.type !== 'result') return;
      const job = slot.inFlight.get(msg.id);
      if (!job) return;
      slot.inFlight.delete(msg.id);
      job.resolve(msg.results);
      this.pump();
    });
    const die = (why: string) => {
      if (!slot.alive) return;
      slot.alive = false;
      // The batches it held fail (their images are reported), the others carry on.
      for (const job of slot.inFlight.values()) job.resolve(job.items.map(() => ({ ok: false, error: why })));
      slot.inFlight.clear();
      if (!this.slots.some((s) => s.alive)) {
        for (const job of this.queue.splice(0)) job.resolve(job.items.map(() => ({ ok: false, error: why })));
      }
      this.pump();
    };
    slot.worker.on('error', (err) => die(`feature worker crashed: ${err.message}`));
    slot.worker.on('exit', (code) => {
      if (!this.closed) die(`feature worker exited (code ${code})`);
    });
  }

  /** Computes one batch on some worker; never rejects (failures are per-item results). */
  run(items: WorkItem[]): Promise<WorkResult[]> {
    if (this.closed)
      return Promise.resolve(items.map(() => ({ ok: false, error: 'feature extractor is closed' })));
    return new Promise((resolve) => {
      this.queue.push({ id: this.nextId++, items, resolve });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const live = this.slots.filter((s) => s.alive && s.inFlight.size < MAX_IN_FLIGHT);
      if (live.length === 0) {
        if (!this.slots.some((s) => s.alive)) {
          for (const job of this.queue.splice(0))
            job.resolve(job.items.map(() => ({ ok: false, error: 'no feature worker left' })));
        }
        return;
      }
      const slot = live.reduce((a, b) => (b.inFlight.size < a.inFlight.size ? b : a));
      const job = this.queue.shift()!;
      slot.inFlight.set(job.id, job);
      const msg: ToWorker = { type: 'batch', id: job.id, items: job.items };
      slot.worker.postMessage(msg);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0))
      job.resolve(job.items.map(() => ({ ok: false, error: 'feature extractor closed' })));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    for (const s of this.slots) {
      for (const job of s.inFlight.values())
        job.resolve(job.items.map(() => ({ ok: false, error: 'feature extractor closed' })));
      s.inFlight.clear();
    }
  }
}
