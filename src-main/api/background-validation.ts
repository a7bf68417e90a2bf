/**
 * The retrain's cross-validation, after the fact: the model is active and the queue scored
 * first (with a provisional weight of its supervised heads, engine/provisional.ts), then this
 * runs the validation on the engine when nothing the user asked for is waiting. It yields the
 * engine to any retrain or scoring (cancelled, and run again after them), and only the active
 * model's validation runs. Its state is on record (ModelInfo.validation) so a reopened project
 * picks it up again.
 */
import type { EventName, EventPayload } from './contract';
import type { ProjectStore } from '../project/store';
import { JobCancelled, WorkerCrashed, type EngineHost } from '../worker/host';
import type { TrainJob, ValidateJob } from '../worker/protocol';
import { referenceSample } from './threshold';

/**
 * How long a validation may take to stop when the user's job needs the engine: past it the
 * worker is terminated and restarted cold (its warm feature session lost), so a step or a
 * fold's scoring in progress is given time to finish.
 */
export const VALIDATION_YIELD_MS = 5000;

export interface BackgroundValidationHooks {
  emit<E extends EventName>(event: E, payload: EventPayload<E>): void;
  /** The validation of `modelId` is in: re-score the queue (the model's weight changed). */
  validated(store: ProjectStore, modelId: number): void;
}

export class BackgroundValidation {
  private readonly pending = new Map<number, ValidateJob>();
  private running: { modelId: number; done: Promise<void>; yielded: boolean } | null = null;

  constructor(
    private readonly host: EngineHost,
    private readonly hooks: BackgroundValidationHooks,
  ) {}

  /** Whether a validation holds the engine. */
  get busy(): boolean {
    return this.running !== null;
  }

  add(store: ProjectStore, modelId: number, job: ValidateJob): void {
    this.pending.set(modelId, job);
    store.setValidation(modelId, { status: 'pending', folds: job.folds, error: null });
  }

  /**
   * Validations a closed project left pending: rebuilt from the labels the models trained on
   * (the engine refuses, and the status says why, when those changed since).
   */
  resume(store: ProjectStore): void {
    const set = store.trainingSet();
    for (const m of store.listModels()) {
      const v = m.validation;
      if (!v || (v.status !== 'pending' && v.status !== 'running')) continue;
      this.add(store, m.id, {
        modelDir: store.modelDir(m.id),
        ...jobImages(set, new Set(store.modelLabelIds(m.id))),
        folds: v.folds,
        cacheDir: store.cacheDir,
      });
    }
  }

  /** Frees the engine for the user's job: a running validation stops and stays pending. */
  async yieldEngine(): Promise<void> {
    const r = this.running;
    if (!r) return;
    r.yielded = true;
    this.host.cancel(VALIDATION_YIELD_MS);
    await r.done;
  }

  /** The model is being deleted: its validation must not write its folder again. */
  async forget(modelId: number): Promise<void> {
    this.pending.delete(modelId);
    if (this.running?.modelId === modelId) await this.yieldEngine();
  }

  /** Forgets the project's validations (it is closing; they resume when it opens again). */
  async clear(): Promise<void> {
    this.pending.clear();
    await this.yieldEngine();
  }

  /** Starts the active model's pending validation; the caller has checked that the engine is idle. */
  runNext(store: ProjectStore): void {
    if (this.running) return;
    const model = store.activeModel();
    const job = model ? this.pending.get(model.id) : undefined;
    if (!model || !job) return;
    const modelId = model.id;
    store.setValidation(modelId, { status: 'running', folds: job.folds, error: null });
    const state = { modelId, done: Promise.resolve(), yielded: false };
    this.running = state;
    // The images outside the training set, now scored: the fold models score them too (threshold.ts).
    const training = new Set([...job.normals, ...job.anomalies].map((x) => Number(x.id)));
    state.done = this.host.validate({ ...job, reference: referenceSample(store.db, training) }).then(
      (result) => {
        this.running = null;
        this.pending.delete(modelId);
        try {
          store.finishValidation(modelId, result.metrics, job.folds);
        } catch (err) {
          this.finish(modelId, 'failed', `the held-out metrics could not be saved: ${String(err)}`);
          return;
        }
        this.finish(modelId, 'done', null);
        this.hooks.validated(store, modelId);
      },
      (err: unknown) => {
        this.running = null;
        if (err instanceof JobCancelled && (state.yielded || !this.pending.has(modelId))) {
          // Runs again once the engine is free; a closing project's stays 'running' on record
          // and resumes when it opens again; a deleted model's is gone.
          if (this.pending.has(modelId))
            safely(() => store.setValidation(modelId, { status: 'pending', folds: job.folds, error: null }));
          this.finish(modelId, 'cancelled', null);
          return;
        }
        this.pending.delete(modelId);
        const message =
          err instanceof WorkerCrashed || err instanceof JobCancelled || err instanceof Error
            ? err.message
            : String(err);
        safely(() => store.setValidation(modelId, { status: 'failed', folds: job.folds, error: message }));
        this.finish(modelId, 'failed', message);
      },
    );
  }

  private finish(modelId: number, status: 'done' | 'failed' | 'cancelled', error: string | null): void {
    this.hooks.emit('validation.finished', { modelId, status, error });
    this.hooks.emit('project.changed', { what: 'models' });
  }
}

/** The labelled images as an engine job takes them (ids as strings); with `keep`, only those ids. */
export function jobImages(
  set: ReturnType<ProjectStore['trainingSet']>,
  keep?: Set<number>,
): Pick<TrainJob, 'normals' | 'anomalies'> {
  const kept = <T extends { id: number }>(xs: T[]): T[] => (keep ? xs.filter((x) => keep.has(x.id)) : xs);
  return {
    normals: kept(set.normals).map((n) => ({ id: String(n.id), path: n.path })),
    anomalies: kept(set.anomalies).map((a) => ({ id: String(a.id), path: a.path, cls: a.cls })),
  };
}

/** The project may have become read-only or closed: the status is then set again on the next open. */
function safely(f: () => void): void {
  try {
    f();
  } catch {
    // see above
  }
}
