/**
 * The implementation of the API contract on top of the project store and the engine
 * worker. Every front door (IPC, HTTP/WebSocket, CLI, tests) calls `call()`: the payload
 * is validated here, at the one front door to the logic, and every failure comes back as
 * a typed `{ code, message }`, never as a thrown exception.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import {
  events,
  isOpName,
  operations,
  type AnyEvent,
  type ApiErrorShape,
  type ApiResult,
  type EventName,
  type EventPayload,
  type FileKind,
  type OpInput,
  type OpName,
  type OpOutput,
  type OpParsedInput,
  type ProjectInfo,
  type ScoringJob,
  type ThresholdSource,
  type TrainProgressEvent,
} from './contract';
import { DEFAULT_VALIDATE_FOLDS } from './defaults';
import { AppError, toErrorShape } from './errors';
import {
  automaticThreshold,
  saveThresholdSource,
  thresholdForTarget,
  thresholdSource,
  verdict,
  withEvidenceAuc,
} from './threshold';
import { heatmapPng } from '../project/heatmap-image';
import { servedImage, servedThumb, type ServedFile } from '../project/served-files';
import { expandSource, importCandidates } from '../project/importer';
import { readLabelFile } from '../project/label-file';
import { RecentList } from '../project/recent';
import { ProjectStore } from '../project/store';
import { deleteModel, exportModel, importModel } from '../models/versions';
import { evaluateModel } from '../report/evaluate';
import { exportReport } from '../report/export';
import { BackgroundValidation, jobImages } from './background-validation';
import { EngineHost, JobCancelled, WorkerCrashed, type EngineHostOptions } from '../worker/host';
import type { ScoredItem, WarmRequest } from '../worker/protocol';
import type { InputShape } from '../engine/features/geometry';

export interface ServiceOptions {
  /** Where new projects go when no folder is given. */
  projectsRoot: string;
  /** Where the recent-projects list lives (default: projectsRoot). */
  stateDir?: string;
  worker?: EngineHostOptions;
}

/** Formats zod issues as one readable sentence per problem, naming the field. */
function describeIssues(op: string, issues: { path: PropertyKey[]; message: string }[]): string {
  const parts = issues.map((i) => {
    const where = i.path.length ? i.path.map(String).join('.') : 'payload';
    return `${where}: ${i.message}`;
  });
  return `${op}: ${parts.join('; ')}`;
}

/** Validates a payload against an operation's input schema; throws AppError('invalid_input'). */
export function validate<K extends OpName>(op: K, payload: unknown): OpParsedInput<K> {
  const schema = operations[op].input;
  const r = schema.safeParse(payload ?? {});
  if (!r.success) throw new AppError('invalid_input', describeIssues(op, r.error.issues));
  return r.data as OpParsedInput<K>;
}

type Handlers = { [K in OpName]: (input: OpParsedInput<K>) => Promise<OpOutput<K>> | OpOutput<K> };

function folderWritable(dir: string): boolean {
  const probe = join(dir, `.swan-write-probe-${process.pid}`);
  try {
    writeFileSync(probe, '');
    rmSync(probe, { force: true });
    return true;
  } catch {
    return false;
  }
}

function safeFolderName(name: string): string {
  const s = name
    .replace(/[^\p{L}\p{N}._ -]+/gu, '_')
    .replace(/^\.+/, '_')
    .trim();
  return s || 'project';
}

/**
 * The project's backbone, input size and shape: its active model's (the manifest's), so the
 * engine warms the session the next scoring and retrain use.
 */
export function activeBackbone(store: Pick<ProjectStore, 'activeModel'>): Omit<WarmRequest, 'cacheDir'> {
  const s = store.activeModel()?.settings ?? {};
  const shape = s.inputShape as Partial<InputShape> | undefined;
  return {
    ...(typeof s.backbone === 'string' ? { backbone: s.backbone } : {}),
    ...(typeof s.inputSize === 'number' ? { inputSize: s.inputSize } : {}),
    ...(typeof shape?.height === 'number' && typeof shape.width === 'number'
      ? { inputShape: { height: shape.height, width: shape.width } }
      : {}),
    ...(typeof s.patchcoreHead === 'boolean' ? { patchcoreHead: s.patchcoreHead } : {}),
  };
}

interface TrainingState {
  runId: number;
  progress: TrainProgressEvent | null;
  done: Promise<void>;
  /** training.cancel came (possibly before the engine was free to start it). */
  cancelRequested: boolean;
}

export class ApiService {
  private store: ProjectStore | null = null;
  private readonly recent: RecentList;
  private readonly host: EngineHost;
  private readonly listeners = new Set<(e: AnyEvent) => void>();
  private training: TrainingState | null = null;
  /** Loss points of the running (else the last) run, and how the last one ended: for a reloaded UI. */
  private lossHistory: Record<string, { step: number; value: number }[]> = {};
  private lastFinished: EventPayload<'training.finished'> | null = null;
  private scoring: { job: ScoringJob; done: number; done$: Promise<void>; cancelRequested: boolean } | null =
    null;
  /** Retrains' cross-validations, run when the engine is free (background-validation.ts). */
  private readonly validation: BackgroundValidation;
  private nextScoringJob = 1;
  private heatmapScales = new Map<number, number>();
  /** Imports, model files and reports in flight: a close aborts them and waits for them. */
  private readonly jobs = new Set<{ abort: AbortController; done: Promise<unknown> }>();

  constructor(private readonly opts: ServiceOptions) {
    this.recent = new RecentList(join(opts.stateDir ?? opts.projectsRoot, 'recent-projects.json'));
    this.host = new EngineHost(opts.worker);
    this.host.on('crashed', (message) => this.emit('worker.crashed', { message, restarted: true }));
    this.validation = new BackgroundValidation(this.host, {
      emit: (event, payload) => this.emit(event, payload),
      validated: (store, modelId) => this.afterValidation(store, modelId),
    });
  }

  // -------------------------------------------------------------------------------------
  // Front door
  // -------------------------------------------------------------------------------------

  /** Validates and runs one operation. Never throws. */
  async call(op: string, payload: unknown): Promise<ApiResult<OpName>> {
    if (!isOpName(op))
      return { ok: false, error: { code: 'unknown_operation', message: `unknown operation "${op}"` } };
    try {
      const input = validate(op, payload);
      const out = await (this.handlers[op] as (i: unknown) => unknown)(input);
      // The output is checked too: a contract violation is our bug and must not reach the UI silently.
      const checked = operations[op].output.safeParse(out);
      if (!checked.success) {
        return {
          ok: false,
          error: { code: 'internal', message: describeIssues(`${op} (output)`, checked.error.issues) },
        };
      }
      return { ok: true, data: checked.data as OpOutput<OpName> };
    } catch (err) {
      return { ok: false, error: this.errorShape(err) };
    }
  }

  /** Typed call for in-process callers (CLI, tests): throws AppError on failure. */
  async invoke<K extends OpName>(op: K, input: OpInput<K>): Promise<OpOutput<K>> {
    const r = await this.call(op, input);
    if (!r.ok) throw new AppError(r.error.code, r.error.message);
    return r.data as OpOutput<K>;
  }

  /** Subscribes to events; returns the unsubscribe function. */
  on(listener: (e: AnyEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit<E extends EventName>(event: E, payload: EventPayload<E>): void {
    const parsed = events[event].safeParse(payload);
    if (!parsed.success) {
      // An engine newer than the contract (a new stage name...) must not break the job.
      console.warn(`swan: dropped malformed ${event} event: ${parsed.error.message}`);
      return;
    }
    const checked = parsed.data as EventPayload<E>;
    for (const l of this.listeners) {
      try {
        l({ event, payload: checked } as AnyEvent);
      } catch {
        // A broken listener (a closed socket) must not break the job that emits.
      }
    }
  }

  private errorShape(err: unknown): ApiErrorShape {
    const shape = toErrorShape(err, this.store?.dir);
    // SQLite reports a folder that turned read-only as an I/O error: check the folder itself.
    if (shape.code === 'io' && this.store && !folderWritable(this.store.dir)) {
      return toErrorShape(Object.assign(new Error(shape.message), { code: 'EACCES' }), this.store.dir);
    }
    return shape;
  }

  private requireStore(): ProjectStore {
    if (!this.store) throw new AppError('no_project', 'no project is open: create or open one first');
    return this.store;
  }

  /** Stops jobs and closes the project and the worker. */
  async close(): Promise<void> {
    await this.closeProject();
    await this.host.close();
  }

  // -------------------------------------------------------------------------------------
  // Files for front doors: only images of the open project, by id
  // -------------------------------------------------------------------------------------

  async resolveFile(kind: FileKind, id: number): Promise<ServedFile | null> {
    const store = this.store;
    if (!store || !Number.isSafeInteger(id) || id <= 0) return null;
    if (kind === 'thumb') return servedThumb(store, id);
    if (kind === 'image') return servedImage(store, id);
    if (!store.imageFileRow(id)) return null;
    const model = store.activeModel();
    const detail = model ? store.scoreDetail(id, model.id) : null;
    if (!model || !detail?.heatmap) return null;
    const detailImg = store.getImage(id);
    const long = 512;
    const k = long / Math.max(detailImg.width, detailImg.height, 1);
    const body = await heatmapPng(
      detail.heatmap,
      this.heatmapScale(store, model.id),
      Math.round(detailImg.width * k),
      Math.round(detailImg.height * k),
    );
    return { contentType: 'image/png', body };
  }

  /** One scale per model, so heatmaps of different images are comparable. */
  private heatmapScale(store: ProjectStore, modelId: number): number {
    let s = this.heatmapScales.get(modelId);
    if (s === undefined) {
      s = store.heatmapReference(modelId);
      this.heatmapScales.set(modelId, s);
    }
    return s;
  }

  // -------------------------------------------------------------------------------------
  // Projects
  // -------------------------------------------------------------------------------------

  /** Runs a long operation on the open project so that closing the project stops and awaits it. */
  private track<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const abort = new AbortController();
    const done = run(abort.signal);
    const job = { abort, done };
    this.jobs.add(job);
    void done.then(
      () => this.jobs.delete(job),
      () => this.jobs.delete(job),
    );
    return done;
  }

  private async closeProject(): Promise<boolean> {
    const store = this.store;
    // New calls see no project from here on; the jobs below still hold theirs.
    this.store = null;
    for (const j of this.jobs) j.abort.abort();
    await Promise.allSettled([...this.jobs].map((j) => j.done));
    // Jobs still waiting for a background validation to yield the engine must not start.
    if (this.training) this.training.cancelRequested = true;
    if (this.scoring) this.scoring.cancelRequested = true;
    await this.validation.clear();
    if (this.training) {
      this.host.cancel();
      await this.training.done;
    }
    if (this.scoring) {
      this.host.cancel();
      await this.scoring.done$;
    }
    store?.close();
    this.heatmapScales.clear();
    this.lossHistory = {};
    this.lastFinished = null;
    return store !== null;
  }

  private async setProject(store: ProjectStore): Promise<ProjectInfo> {
    await this.closeProject();
    this.store = store;
    // The engine starts now, not on the first retrain: backend, backbone, feature session.
    this.host.warm({ cacheDir: store.cacheDir, ...activeBackbone(store) });
    this.validation.resume(store);
    this.engineIdle(store);
    this.recent.touch(store.dir, store.name);
    this.emit('project.changed', { what: 'project' });
    return store.info();
  }

  private readonly handlers: Handlers = {
    'project.create': async ({ name, dir }) => {
      const target = resolve(dir ?? join(this.opts.projectsRoot, safeFolderName(name)));
      return this.setProject(ProjectStore.create(target, name));
    },
    'project.open': async ({ path }) => {
      const target = resolve(path);
      if (this.store?.dir === target) return this.store.info();
      return this.setProject(ProjectStore.open(target));
    },
    'project.current': () => this.store?.info() ?? null,
    'system.info': () => this.host.systemInfo(),
    'project.listRecent': () => ({ projects: this.recent.list() }),
    'project.close': async () => ({ closed: await this.closeProject() }),

    // Import -------------------------------------------------------------------------
    'import.run': ({ source, batch, applyLabels }) => {
      const store = this.requireStore();
      return this.track(async (signal) => {
        const { candidates, skipped } = await expandSource(source);
        return this.importAndNotify(store, candidates, skipped, batch, applyLabels ?? true, signal);
      });
    },
    'import.upload': ({ files, batch }) => {
      const store = this.requireStore();
      return this.track((signal) => this.upload(store, files, batch, signal));
    },

    // Images -------------------------------------------------------------------------
    'images.list': ({ offset, limit, filter, sort }) =>
      this.requireStore().listImages({ offset, limit, filter, sort }),
    'images.ids': ({ filter, sort }) => ({ ids: this.requireStore().imageIds(filter, sort) }),
    'images.get': ({ id }) => this.requireStore().getImage(id),
    'images.remove': ({ ids }) => {
      const removed = this.requireStore().removeImages(ids);
      this.emit('project.changed', { what: 'images' });
      return { removed };
    },
    'images.refresh': () => {
      const { ok, missing } = this.requireStore().refreshStatus();
      this.emit('project.changed', { what: 'images' });
      return { ok, missing };
    },

    // Labels -------------------------------------------------------------------------
    'labels.set': ({ ids, label, classId, className }) => {
      const store = this.requireStore();
      const cls =
        label === 'defect'
          ? className !== undefined
            ? store.ensureClass(className).id
            : (classId ?? null)
          : null;
      const updated = store.setLabels(ids, label, cls);
      this.emit('project.changed', { what: 'labels' });
      return { updated };
    },
    'classes.list': () => ({ classes: this.requireStore().listClasses() }),
    'classes.create': ({ name }) => {
      const c = this.requireStore().ensureClass(name);
      this.emit('project.changed', { what: 'classes' });
      return c;
    },

    // Training -----------------------------------------------------------------------
    'training.start': ({ settings }) => this.startTraining(settings ?? {}),
    'training.cancel': ({ runId }) => {
      if (!this.training || (runId !== undefined && runId !== this.training.runId))
        return { cancelled: false };
      if (this.training.cancelRequested) return { cancelled: false };
      this.training.cancelRequested = true;
      // While a background validation still yields the engine, the run stops before it starts.
      this.host.cancel();
      return { cancelled: true };
    },
    'training.status': () => {
      const store = this.requireStore();
      if (!this.training)
        return { run: null, progress: null, losses: this.lossHistory, lastFinished: this.lastFinished };
      return {
        run: store.getRun(this.training.runId),
        progress: this.training.progress,
        losses: this.lossHistory,
        lastFinished: null,
      };
    },
    'training.runs': () => ({ runs: this.requireStore().listRuns() }),

    // Models -------------------------------------------------------------------------
    'models.list': () => {
      const store = this.requireStore();
      return { models: store.listModels().map((m) => withEvidenceAuc(store.db, m)) };
    },
    'models.active': () => {
      const store = this.requireStore();
      const model = store.activeModel();
      return { model: model ? withEvidenceAuc(store.db, model) : null };
    },
    'models.activate': ({ id }) => {
      if (this.scoring)
        throw new AppError('busy', 'scoring is running: wait for it or cancel it before switching models');
      const store = this.requireStore();
      const m = store.activateModel(id);
      this.emit('project.changed', { what: 'models' });
      this.engineIdle(store);
      return m;
    },

    // Scoring ------------------------------------------------------------------------
    'scoring.start': ({ scope }) => this.startScoring(scope),
    'scoring.cancel': () => {
      if (!this.scoring || this.scoring.cancelRequested) return { cancelled: false };
      this.scoring.cancelRequested = true;
      this.host.cancel();
      return { cancelled: true };
    },
    'scoring.status': () => {
      const store = this.requireStore();
      return {
        job: this.scoring?.job ?? null,
        done: this.scoring?.done ?? 0,
        total: this.scoring?.job.total ?? 0,
        unscored: store.unscoredCount(),
      };
    },

    // Threshold ----------------------------------------------------------------------
    'threshold.get': () => {
      const store = this.requireStore();
      const model = store.activeModel();
      const threshold = store.getThreshold();
      if (!model) return { threshold, source: null, rates: null, scale: null, queue: null, warnings: [] };
      return {
        threshold,
        source: thresholdSource(store.db, model.id, threshold !== null),
        ...verdict(store.db, model.id, threshold),
      };
    },
    'threshold.set': ({ threshold, falseAlarmRate, catchRate }) => {
      const store = this.requireStore();
      const model = store.activeModel();
      if (!model)
        throw new AppError('not_found', 'there is no active model yet: train one before setting a threshold');
      let value = threshold;
      let source: ThresholdSource = { kind: 'value' };
      if (falseAlarmRate !== undefined) {
        value = thresholdForTarget(store.db, model.id, { falseAlarmRate });
        source = { kind: 'falseAlarmRate', target: falseAlarmRate };
      } else if (catchRate !== undefined) {
        value = thresholdForTarget(store.db, model.id, { catchRate });
        source = { kind: 'catchRate', target: catchRate };
      }
      const t = value as number;
      const flagged = store.db.transaction(() => {
        saveThresholdSource(store.db, model.id, source);
        return store.setThreshold(t, model.id);
      })();
      this.emit('project.changed', { what: 'threshold' });
      const v = verdict(store.db, model.id, t);
      return {
        threshold: t,
        flagged,
        source,
        rates: v.rates!,
        scale: v.scale,
        queue: v.queue,
        warnings: v.warnings,
      };
    },
    'threshold.histogram': ({ bins }) => this.requireStore().histogram(bins),

    'images.batches': () => {
      const store = this.requireStore();
      const evaluation = new Set(store.evaluationBatches());
      const rows = store.db
        .prepare(
          'SELECT batch AS name, COUNT(*) AS count, MIN(imported_at) AS firstImportedAt FROM images GROUP BY batch ORDER BY MIN(id)',
        )
        .all() as { name: string; count: number; firstImportedAt: string }[];
      return { batches: rows.map((b) => ({ ...b, evaluationOnly: evaluation.has(b.name) })) };
    },
    'images.setEvaluation': ({ batch, evaluationOnly }) => {
      this.requireStore().setEvaluationBatch(batch, evaluationOnly);
      this.emit('project.changed', { what: 'labels' });
      return { batch, evaluationOnly };
    },
    'labels.importFile': async (mapping) => {
      const store = this.requireStore();
      const rows = await readLabelFile(mapping);
      const ids = store.imageIdsByPath(rows.map((r) => r.path));
      const unmatched = rows.filter((r) => !ids.has(r.path));
      if (ids.size === 0) {
        throw new AppError(
          'invalid_input',
          `no row of ${mapping.file} matched an image of this project; tried ${unmatched
            .slice(0, 3)
            .map((r) => r.path)
            .join(
              ', ',
            )}${unmatched.length > 3 ? ` and ${unmatched.length - 3} more` : ''}: import the images first, or fix the path template`,
        );
      }
      const matched = rows.filter((r) => ids.has(r.path));
      const good = matched.filter((r) => r.label === 'good').map((r) => ids.get(r.path)!);
      const defect = matched.filter((r) => r.label === 'defect').map((r) => ids.get(r.path)!);
      store.db.transaction(() => {
        if (good.length) store.setLabels(good, 'good', null);
        if (defect.length) store.setLabels(defect, 'defect', null);
      })();
      this.emit('project.changed', { what: 'labels' });
      return {
        labelled: matched.length,
        good: good.length,
        defect: defect.length,
        unmatched: unmatched.length,
        tried: unmatched.slice(0, 5).map((r) => r.path),
      };
    },

    // Model versions -------------------------------------------------------------------
    'models.delete': async ({ id }) => {
      const store = this.requireStore();
      if (this.scoring?.job.modelId === id)
        throw new AppError(
          'busy',
          'this model is scoring images: wait for it or cancel it before deleting it',
        );
      await this.validation.forget(id);
      await deleteModel(store, id);
      this.heatmapScales.delete(id);
      this.engineIdle(store);
      this.emit('project.changed', { what: 'models' });
      return { deleted: true };
    },
    'models.export': ({ id, file, outDir }) => {
      const store = this.requireStore();
      return this.track(() => exportModel(store, id, { file, outDir }));
    },
    'models.import': async ({ file, activate }) => {
      const store = this.requireStore();
      if (activate && this.scoring)
        throw new AppError('busy', 'scoring is running: wait for it or cancel it before switching models');
      const m = await this.track(() => importModel(store, file, activate));
      this.emit('project.changed', { what: 'models' });
      return m;
    },

    // Evaluation -----------------------------------------------------------------------
    'evaluate.run': ({ modelIds, batch }) => {
      const store = this.requireStore();
      const ids = modelIds ?? (store.activeModel() ? [store.activeModel()!.id] : []);
      if (ids.length === 0)
        throw new AppError('not_found', 'there is no model yet: train one before evaluating');
      return {
        batch: batch ?? null,
        models: ids.map((id) => evaluateModel(store.db, id, batch ?? null, store.getThreshold(id))),
      };
    },

    // Reports --------------------------------------------------------------------------
    'report.export': async ({ batch, format, outDir, modelId }) => {
      const store = this.requireStore();
      let last = 0;
      return this.track((signal) =>
        exportReport(store, { batch: batch ?? null, format, outDir, modelId, signal }, (p) => {
          // Throttled like import progress: a 5,000-image report must not flood the socket.
          const t = Date.now();
          if (p.done === p.total || p.done === 0 || t - last > 100) {
            last = t;
            this.emit('report.progress', p);
          }
        }),
      );
    },
  };

  private async upload(
    store: ProjectStore,
    files: OpParsedInput<'import.upload'>['files'],
    batch: string | undefined,
    signal: AbortSignal,
  ) {
    const batchName = batch ?? this.defaultBatch();
    // Dropped files have no path of their own: they are kept inside the project.
    const dir = join(store.dir, 'uploads', new Date().toISOString().replace(/[:.]/g, '-'));
    mkdirSync(dir, { recursive: true });
    const candidates = files.map((f, k) => {
      const safe = basename(f.name).replace(/[^\p{L}\p{N}._ -]+/gu, '_') || `file-${k}`;
      const path = join(dir, `${String(k).padStart(4, '0')}-${safe}`);
      writeFileSync(path, Buffer.from(f.dataBase64, 'base64'));
      return { path };
    });
    const summary = await this.importAndNotify(store, candidates, [], batchName, false, signal);
    // Keep the original names in the report: the stored ones carry a prefix.
    summary.skipped = summary.skipped.map((s) => ({ ...s, name: s.name.replace(/^\d{4}-/, '') }));
    return summary;
  }

  private defaultBatch(): string {
    return `import ${new Date().toISOString().slice(0, 19).replace('T', ' ')}`;
  }

  private async importAndNotify(
    store: ProjectStore,
    candidates: Parameters<typeof importCandidates>[1],
    skipped: Parameters<typeof importCandidates>[2],
    batch: string | undefined,
    applyLabels: boolean,
    signal: AbortSignal,
  ) {
    let last = 0;
    const summary = await importCandidates(store, candidates, skipped, {
      batch: batch ?? this.defaultBatch(),
      applyLabels,
      signal,
      onProgress: (done, total, current) => {
        // Throttled: a 10,000-file import must not flood the socket.
        const t = Date.now();
        if (done === total || t - last > 100) {
          last = t;
          this.emit('import.progress', { done, total, current });
        }
      },
    });
    this.emit('project.changed', { what: 'images' });
    return summary;
  }

  // -------------------------------------------------------------------------------------
  // Training and scoring jobs
  // -------------------------------------------------------------------------------------

  private assertIdle(): void {
    if (this.training)
      throw new AppError('busy', `training run ${this.training.runId} is running: wait for it or cancel it`);
    if (this.scoring) throw new AppError('busy', 'scoring is running: wait for it or cancel it');
  }

  private startTraining(settings: OpParsedInput<'training.start'>['settings'] & object): { runId: number } {
    const store = this.requireStore();
    this.assertIdle();
    const set = store.trainingSet();
    if (set.normals.length < 2) {
      throw new AppError(
        'invalid_input',
        `training needs at least 2 images labelled good (the project has ${set.normals.length})`,
      );
    }
    const { inputSize, backbone, validateFolds = DEFAULT_VALIDATE_FOLDS, ...engineSettings } = settings;
    const runId = store.startRun(settings);
    // If the inspector activates another version meanwhile, the finished run does not override it.
    const activeAtStart = store.activeModel()?.id ?? null;
    const outDir = store.runDir(runId);
    const state: TrainingState = { runId, progress: null, done: Promise.resolve(), cancelRequested: false };
    this.training = state;
    this.lossHistory = {};
    this.lastFinished = null;
    const finish = (
      status: 'done' | 'failed' | 'cancelled',
      modelId: number | null,
      version: number | null,
      error: string | null,
      warnings: string[],
    ) => {
      this.training = null;
      this.lastFinished = { runId, status, modelId, version, error, warnings };
      this.emit('training.finished', this.lastFinished);
      if (status !== 'done') this.engineIdle(store);
    };
    const { normals, anomalies } = jobImages(set);
    const previous = store.activeModel();
    state.done = this.validation
      .yieldEngine()
      .then(() => {
        if (state.cancelRequested) throw new JobCancelled();
        return this.host.train(
          {
            normals,
            anomalies,
            outDir,
            inputSize,
            ...(backbone ? { backbone } : {}),
            settings: engineSettings,
            cacheDir: store.cacheDir,
            validateFolds,
            // The model is active and scores the queue first; its cross-validation runs after.
            validation: 'later',
            ...(previous ? { provisionalFrom: store.modelDir(previous.id) } : {}),
          },
          (p) => {
            state.progress = { runId, ...p };
            if (p.stage === 'train' && p.losses) {
              for (const [head, value] of Object.entries(p.losses))
                if (Number.isFinite(value)) (this.lossHistory[head] ??= []).push({ step: p.step, value });
            }
            this.emit('training.progress', state.progress);
          },
        );
      })
      .then(
        (result) => {
          // The model is completely saved: only now does it become a version, and active.
          const model = store.addModel(
            {
              dir: relative(store.dir, resolve(result.modelDir)),
              // What the engine really used (defaults filled in), else what was asked for.
              settings: result.settings ?? settings,
              labelGood: set.normals.length,
              labelDefect: set.anomalies.length,
              labelIds: [...set.normals, ...set.anomalies].map((x) => x.id),
              metrics: result.metrics,
              warnings: result.warnings,
              runId,
            },
            (store.activeModel()?.id ?? null) === activeAtStart,
          );
          if (result.validationPending)
            this.validation.add(store, model.id, {
              modelDir: store.modelDir(model.id),
              normals,
              anomalies,
              folds: result.validationPending.folds,
              cacheDir: store.cacheDir,
            });
          finish('done', model.id, model.version, null, result.warnings);
          this.emit('project.changed', { what: 'models' });
          if (this.store === store) {
            try {
              this.startScoring('all');
            } catch (err) {
              this.emit('scoring.finished', {
                jobId: 0,
                status: 'failed',
                scored: 0,
                failed: [],
                error: this.errorShape(err).message,
              });
            }
          }
        },
        (err: unknown) => {
          const cancelled = err instanceof JobCancelled;
          const message = cancelled
            ? null
            : err instanceof WorkerCrashed
              ? err.message
              : this.errorShape(err).message;
          try {
            store.finishRun(runId, cancelled ? 'cancelled' : 'failed', message);
            rmSync(outDir, { recursive: true, force: true });
          } catch {
            // The project may be read-only now; the run is marked failed on next open.
          }
          finish(cancelled ? 'cancelled' : 'failed', null, null, message, []);
        },
      )
      .catch((err: unknown) => {
        // Recording the model failed (e.g. the folder became read-only): report, keep the old model.
        try {
          store.finishRun(runId, 'failed', this.errorShape(err).message);
        } catch {
          // reported below
        }
        if (this.training === state) finish('failed', null, null, this.errorShape(err).message, []);
      });
    return { runId };
  }

  /**
   * Re-scores with the weight the model's cross-validation chose (from cached features), and
   * sets its automatic threshold again on the held-out evidence that came with it.
   */
  private afterValidation(store: ProjectStore, modelId: number): void {
    if (this.store !== store || this.training || this.scoring) return;
    if (store.activeModel()?.id !== modelId) return;
    try {
      this.startScoring('all', { refreshAutomaticThreshold: true });
    } catch {
      // The queue keeps its provisional scores; the next scoring uses the chosen weight.
    }
  }

  /** Nothing the user asked for holds the engine: a pending background validation may run. */
  private engineIdle(store: ProjectStore): void {
    if (this.store === store && !this.training && !this.scoring) this.validation.runNext(store);
  }

  private startScoring(
    scope: 'all' | 'unscored',
    opts: { refreshAutomaticThreshold?: boolean } = {},
  ): ScoringJob {
    const store = this.requireStore();
    this.assertIdle();
    const model = store.activeModel();
    if (!model)
      throw new AppError('not_found', 'there is no model yet: label some images and train one first');
    const items = store.imagesToScore(model.id, scope);
    const job: ScoringJob = { jobId: this.nextScoringJob++, modelId: model.id, total: items.length };
    const state = { job, done: 0, done$: Promise.resolve(), cancelRequested: false };
    this.scoring = state;
    const failed: { id: number; error: string }[] = [];
    let scored = 0;
    const finish = (status: 'done' | 'failed' | 'cancelled', error: string | null) => {
      this.scoring = null;
      this.heatmapScales.delete(model.id);
      try {
        const current = store.getThreshold(model.id);
        const refresh =
          opts.refreshAutomaticThreshold &&
          current !== null &&
          thresholdSource(store.db, model.id, true)?.kind === 'auto';
        if (status === 'done' && (current === null || refresh)) {
          // Every new model gets its own threshold from its own held-out evidence (threshold.ts).
          const t = automaticThreshold(store.db, model.id) ?? store.scoreQuantile(model.id, 0.9);
          if (t !== null) store.setThreshold(t, model.id);
          if (refresh) this.emit('project.changed', { what: 'threshold' });
        }
      } catch {
        // A threshold is a convenience; the scores are saved.
      }
      this.emit('scoring.finished', { jobId: job.jobId, status, scored, failed, error });
      this.emit('project.changed', { what: 'scores' });
      this.engineIdle(store);
    };
    const modelDir = store.modelDir(model.id);
    let writeError: unknown = null;
    const onChunk = (chunk: ScoredItem[], done: number, total: number): void => {
      if (writeError) return;
      try {
        const ok = chunk.flatMap((c) =>
          c.ok ? [{ imageId: c.id, total: c.total, perHead: c.perHead, heatmap: c.heatmap }] : [],
        );
        store.saveScores(model.id, ok);
        for (const c of chunk) if (!c.ok) failed.push({ id: c.id, error: c.error });
        scored += ok.length;
        state.done = done;
        this.emit('scoring.progress', { jobId: job.jobId, done, total });
      } catch (err) {
        // Cannot save (read-only folder, closed project): stop scoring, report why.
        writeError = err;
        this.host.cancel();
      }
    };
    const run =
      items.length === 0
        ? Promise.resolve()
        : this.validation.yieldEngine().then(() => {
            if (state.cancelRequested) throw new JobCancelled();
            return this.host.score({ modelDir, cacheDir: store.cacheDir, items }, onChunk);
          });
    state.done$ = run.then(
      () => (writeError ? finish('failed', this.errorShape(writeError).message) : finish('done', null)),
      (err: unknown) => {
        if (writeError) finish('failed', this.errorShape(writeError).message);
        else if (err instanceof JobCancelled) finish('cancelled', null);
        else finish('failed', this.errorShape(err).message);
      },
    );
    return job;
  }
}

export function createService(opts: ServiceOptions): ApiService {
  return new ApiService(opts);
}
