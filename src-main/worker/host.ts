/**
 * The main-thread side of the engine worker: starts it, runs one job at a time on it,
 * cancels within a second (by terminating the worker if the engine does not stop in
 * time), and restarts it when it crashes.
 */
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { TrainProgress } from '../engine/types';
import type { SystemInfo } from '../api/contract';
import type {
  FromWorker,
  ScoredItem,
  ScoreJob,
  ToWorker,
  TrainedModel,
  TrainJob,
  ValidatedModel,
  ValidateJob,
  WarmRequest,
  WorkerInit,
} from './protocol';

export interface WorkerEntry {
  /** The script the Worker runs. */
  file: URL | string;
  /** Set when `file` is the tsx bootstrap: the TypeScript entry it loads. */
  tsEntry?: string;
}

/**
 * Where the worker script is. From TypeScript sources (tsx, vitest) it is the .ts entry
 * behind a tsx bootstrap; in a built app it is the bundled `engine-worker.js` beside the
 * main bundle (electron-vite: add `engine-worker: 'src-main/worker/engine-worker.ts'` to
 * the main build's inputs, or pass its path from `?modulePath`).
 */
export function defaultWorkerEntry(): WorkerEntry {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    return { file: new URL('./tsx-bootstrap.mjs', here), tsEntry: new URL('./engine-worker.ts', here).href };
  }
  for (const rel of [
    './engine-worker.js',
    '../engine-worker.js',
    './engine-worker.mjs',
    '../engine-worker.mjs',
  ]) {
    const u = new URL(rel, here);
    if (existsSync(fileURLToPath(u))) return { file: u };
  }
  throw new Error(`engine worker bundle not found next to ${fileURLToPath(here)}`);
}

/** How long a cancelled job may take to stop by itself before the worker is terminated. */
export const CANCEL_GRACE_MS = 700;

export class JobCancelled extends Error {
  constructor() {
    super('cancelled');
    this.name = 'JobCancelled';
  }
}

export class WorkerCrashed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkerCrashed';
  }
}

/** An error the engine raised inside the worker, with its original name (EngineError...). */
export class WorkerJobFailed extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

interface ActiveJob {
  id: number;
  onMessage(m: FromWorker): void;
  resolve(): void;
  reject(err: Error): void;
  cancelTimer?: NodeJS.Timeout;
  cancelling: boolean;
}

/** The result message of each job that has one. */
interface JobResults {
  trained: TrainedModel;
  validated: ValidatedModel;
}

export interface EngineHostOptions {
  entry?: WorkerEntry;
  /** Replaces the real engine inside the worker (tests). */
  engineModule?: string;
}

export interface EngineHostEvents {
  crashed: [message: string];
}

export class EngineHost extends EventEmitter<EngineHostEvents> {
  private worker: Worker | null = null;
  private job: ActiveJob | null = null;
  private nextJobId = 1;
  private closed = false;
  /** Set while we terminate the worker on purpose, so its exit is not taken for a crash. */
  private expectedExit = new WeakSet<Worker>();
  private infoRequests = new Map<number, { resolve(i: SystemInfo): void; reject(e: Error): void }>();
  private nextInfoId = 1;
  /** The worker's backend is chosen once from the installed packages: asked once, then kept. */
  private info: Promise<SystemInfo> | null = null;
  /** The last warm request, repeated to every worker started after it (restarts included). */
  private warmRequest: WarmRequest | null = null;

  constructor(private readonly opts: EngineHostOptions = {}) {
    super();
  }

  get busy(): boolean {
    return this.job !== null;
  }

  private spawn(): Worker {
    const entry = this.opts.entry ?? defaultWorkerEntry();
    const data: WorkerInit = { engineModule: this.opts.engineModule, tsEntry: entry.tsEntry };
    const w = new Worker(entry.file, { workerData: data });
    w.on('message', (m: FromWorker) => {
      if (m.type === 'info' || m.type === 'info-failed') {
        const pending = this.infoRequests.get(m.requestId);
        this.infoRequests.delete(m.requestId);
        if (m.type === 'info') pending?.resolve(m.info);
        else pending?.reject(new Error(m.message));
        if (this.infoRequests.size === 0 && !this.job) w.unref();
        return;
      }
      if (this.worker === w && this.job && 'jobId' in m && m.jobId === this.job.id) this.job.onMessage(m);
    });
    w.on('error', (err) => this.onWorkerGone(w, `the engine worker crashed: ${err.message}`));
    w.on('exit', (code) =>
      this.onWorkerGone(w, `the engine worker stopped unexpectedly (exit code ${code})`),
    );
    // A worker with no job must not keep the process alive.
    w.unref();
    if (this.warmRequest) w.postMessage({ type: 'warm', request: this.warmRequest } satisfies ToWorker);
    return w;
  }

  private onWorkerGone(w: Worker, message: string): void {
    if (this.worker !== w) return;
    this.worker = null;
    for (const pending of this.infoRequests.values()) pending.reject(new WorkerCrashed(message));
    this.infoRequests.clear();
    if (this.expectedExit.has(w) || this.closed) return;
    const job = this.job;
    this.job = null;
    if (job) {
      clearTimeout(job.cancelTimer);
      job.reject(job.cancelling ? new JobCancelled() : new WorkerCrashed(message));
    }
    this.emit('crashed', message);
    // Restart now so the next job does not pay for it, and so "restarted" is true.
    if (!this.closed) this.worker = this.spawn();
  }

  private ensureWorker(): Worker {
    this.worker ??= this.spawn();
    return this.worker;
  }

  private run(msg: (jobId: number) => ToWorker, onMessage: (m: FromWorker) => void): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the engine host is closed'));
    if (this.job) return Promise.reject(new Error('the engine is busy with another job'));
    const w = this.ensureWorker();
    const id = this.nextJobId++;
    return new Promise<void>((resolve, reject) => {
      const job: ActiveJob = {
        id,
        cancelling: false,
        onMessage: (m) => {
          if (m.type === 'finished' || m.type === 'cancelled' || m.type === 'failed') {
            clearTimeout(job.cancelTimer);
            this.job = null;
            w.unref();
            if (m.type === 'finished') resolve();
            else if (m.type === 'cancelled') reject(new JobCancelled());
            else reject(new WorkerJobFailed(m.name, m.message));
          } else onMessage(m);
        },
        resolve,
        reject,
      };
      this.job = job;
      // Keep the process alive while a job runs.
      w.ref();
      w.postMessage(msg(id));
    });
  }

  /**
   * Starts the worker now and has it open a feature session for this cache (backend,
   * backbone workers): the next job does not wait for them. Repeated after a restart.
   */
  warm(request: WarmRequest): void {
    if (this.closed) return;
    this.warmRequest = request;
    if (this.worker) this.worker.postMessage({ type: 'warm', request } satisfies ToWorker);
    else this.ensureWorker();
  }

  /** Trains in the worker; resolves with the saved model, or rejects (JobCancelled, WorkerCrashed, engine error). */
  train(job: TrainJob, onProgress: (p: TrainProgress) => void): Promise<TrainedModel> {
    return this.runForResult(
      (jobId) => ({ type: 'train', jobId, job }),
      'trained',
      onProgress,
      'the engine worker finished training without a model',
    );
  }

  /** Cross-validates a saved model in the worker (ValidateJob); resolves with its new metrics. */
  validate(
    job: ValidateJob,
    onProgress: (p: TrainProgress) => void = () => undefined,
  ): Promise<ValidatedModel> {
    return this.runForResult(
      (jobId) => ({ type: 'validate', jobId, job }),
      'validated',
      onProgress,
      'the engine worker finished validating without a result',
    );
  }

  /** A job that reports progress and ends with one result message of type `resultType`. */
  private async runForResult<T extends keyof JobResults>(
    msg: (jobId: number) => ToWorker,
    resultType: T,
    onProgress: (p: TrainProgress) => void,
    missing: string,
  ): Promise<JobResults[T]> {
    let result: JobResults[T] | null = null;
    await this.run(msg, (m) => {
      if (m.type === 'progress') onProgress(m.progress);
      else if (m.type === resultType) result = (m as { result: JobResults[T] }).result;
    });
    if (!result) throw new Error(missing);
    return result;
  }

  /** Scores in the worker; results arrive per chunk through onChunk. */
  score(job: ScoreJob, onChunk: (items: ScoredItem[], done: number, total: number) => void): Promise<void> {
    return this.run(
      (jobId) => ({ type: 'score', jobId, job }),
      (m) => {
        if (m.type === 'scored') onChunk(m.items, m.done, m.total);
      },
    );
  }

  /** The backend and device the worker runs on, and whether full mode can run there. */
  systemInfo(): Promise<SystemInfo> {
    if (this.closed) return Promise.reject(new Error('the engine host is closed'));
    this.info ??= new Promise<SystemInfo>((resolve, reject) => {
      const w = this.ensureWorker();
      const requestId = this.nextInfoId++;
      this.infoRequests.set(requestId, { resolve, reject });
      w.ref();
      w.postMessage({ type: 'info', requestId } satisfies ToWorker);
    });
    this.info.catch(() => {
      this.info = null;
    });
    return this.info;
  }

  /**
   * Asks the running job to stop; if it has not within graceMs (the engine is deep in a
   * computation), the worker is terminated and a fresh one started (cold: its feature
   * session is lost, so a background job that yields to the user's gets a longer grace).
   */
  cancel(graceMs = CANCEL_GRACE_MS): boolean {
    const job = this.job;
    const w = this.worker;
    if (!job || !w || job.cancelling) return false;
    job.cancelling = true;
    w.postMessage({ type: 'cancel', jobId: job.id } satisfies ToWorker);
    job.cancelTimer = setTimeout(() => {
      if (this.job !== job) return;
      this.expectedExit.add(w);
      this.worker = null;
      this.job = null;
      void w.terminate();
      job.reject(new JobCancelled());
      if (!this.closed) this.worker = this.spawn();
    }, graceMs);
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    const job = this.job;
    this.job = null;
    if (job) {
      clearTimeout(job.cancelTimer);
      job.reject(new JobCancelled());
    }
    if (w) {
      this.expectedExit.add(w);
      await w.terminate();
    }
  }
}
