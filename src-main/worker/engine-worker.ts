/**
 * The engine worker: runs training and scoring off the main thread, one job at a time,
 * and streams progress back. It holds no database handle: the app records results.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { appMetrics } from '../models/held-out';
import type {
  EngineApi,
  EngineSession,
  FromWorker,
  ScoredItem,
  ScoreJob,
  ToWorker,
  TrainJob,
  ValidateJob,
  WarmRequest,
  WorkerInit,
} from './protocol';

/** Scoring goes in small chunks so results are saved, and cancel is seen, as it goes. */
const SCORE_CHUNK = 8;

const port = parentPort;
if (!port) throw new Error('engine-worker must run in a worker thread');
const init = (workerData ?? {}) as WorkerInit;

let enginePromise: Promise<EngineApi> | null = null;
function engine(): Promise<EngineApi> {
  // The static import path lets a bundler include the engine in the worker bundle.
  enginePromise ??= (
    init.engineModule ? import(init.engineModule) : import('../engine/index')
  ) as Promise<EngineApi>;
  return enginePromise;
}

const post = (m: FromWorker): void => port.postMessage(m);

/**
 * The feature session kept open between jobs: the backend, the backbone workers and the
 * in-memory feature cache stay warm from one retrain to the next. One at a time, for one
 * cache folder, input size and backbone; a job for another opens a new one.
 */
let open: { key: string; session: Promise<EngineSession> } | null = null;

async function sessionFor(req: WarmRequest): Promise<EngineSession | undefined> {
  const e = await engine();
  if (!e.openSession) return undefined;
  const backbone = req.backbone ?? 'mobilenet';
  // The taps the project's heads read (the PatchCore head's): without them the session could not
  // serve its retrains and scorings, which would each open a cold one of their own.
  const tapLayers = e.sessionTapLayers?.(req.patchcoreHead, backbone) ?? [];
  // By engine id: 'resnet50' (a retrain's setting) and 'resnet50_v2' (a model's) share a session.
  const key = JSON.stringify([
    req.cacheDir ?? null,
    req.inputSize ?? 224,
    req.inputShape ?? null,
    e.backboneIdOf?.(backbone) ?? backbone,
    tapLayers,
  ]);
  if (open?.key !== key) {
    const old = open;
    const session = e.openSession({
      cacheDir: req.cacheDir,
      inputSize: req.inputSize,
      ...(req.inputShape ? { inputShape: req.inputShape } : {}),
      backbone,
      tapLayers,
    });
    open = { key, session };
    // A session that failed to open is not kept: the next job tries again, and reports why.
    session.catch(() => {
      if (open?.session === session) open = null;
    });
    void old?.session.then((s) => s.close()).catch(() => undefined);
  }
  return open.session;
}

/** The open session if it reads this cache folder (the scorer checks the backbone). */
function sessionForCache(cacheDir: string | undefined): Promise<EngineSession> | undefined {
  return open && JSON.parse(open.key)[0] === (cacheDir ?? null) ? open.session : undefined;
}

async function warm(req: WarmRequest): Promise<void> {
  const session = await sessionFor(req);
  await session?.warm();
  await (await engine()).warmTraining?.();
}
const aborts = new Map<number, AbortController>();

class Cancelled extends Error {}

/** Round-trips through JSON: the database stores JSON, and typed arrays would not survive. */
function plain(v: unknown): Record<string, unknown> | null {
  return v && typeof v === 'object' ? (JSON.parse(JSON.stringify(v)) as Record<string, unknown>) : null;
}

function manifestMetrics(manifest: unknown): Record<string, unknown> | null {
  return plain(appMetrics(manifest));
}

function manifestSettings(manifest: unknown): Record<string, unknown> | null {
  const m = manifest as {
    settings?: unknown;
    backbone?: { id?: unknown; inputSize?: unknown; inputShape?: unknown };
    backend?: { tag?: unknown };
  } | null;
  const settings = plain(m?.settings);
  if (!settings) return null;
  if (m?.backbone) Object.assign(settings, { backbone: m.backbone.id, inputSize: m.backbone.inputSize });
  // An elongated model's input (features/geometry.ts): opening its project warms a session of that shape.
  if (m?.backbone?.inputShape) settings.inputShape = plain(m.backbone.inputShape);
  if (typeof m?.backend?.tag === 'string') settings.backend = m.backend.tag;
  return settings;
}

async function train(jobId: number, job: TrainJob, signal: AbortSignal): Promise<void> {
  const e = await engine();
  const full = job.settings?.mode === 'full';
  // The shape the engine would choose for these images: the warm session is kept for it, so
  // the scoring after the retrain (and the next retrain) reuse it.
  const inputShape =
    full || !e.inputShapeFor
      ? undefined
      : ((await e.inputShapeFor(
          job.inputSize ?? 224,
          [...job.normals, ...job.anomalies].map((x) => x.path),
        )) ?? null);
  const result = await e.trainModel({
    ...job,
    ...(inputShape !== undefined ? { inputShape } : {}),
    // Full mode reads images, not cached features: a warm session would only cost backbone loads.
    session: full
      ? undefined
      : await sessionFor({
          ...job,
          ...(inputShape ? { inputShape } : {}),
          ...(job.settings?.patchcoreHead !== undefined ? { patchcoreHead: job.settings.patchcoreHead } : {}),
        }),
    signal,
    onProgress: (progress) => post({ type: 'progress', jobId, progress }),
  });
  if (signal.aborted) throw new Cancelled();
  post({
    type: 'trained',
    jobId,
    result: {
      modelDir: result.modelDir,
      metrics: manifestMetrics(result.manifest),
      settings: manifestSettings(result.manifest),
      warnings: result.warnings,
      ...(result.validationPending ? { validationPending: result.validationPending } : {}),
    },
  });
}

async function validate(jobId: number, job: ValidateJob, signal: AbortSignal): Promise<void> {
  const e = await engine();
  if (!e.validateModel) throw new Error('this engine cannot validate a saved model');
  const result = await e.validateModel({
    ...job,
    session: await sessionForCache(job.cacheDir)?.catch(() => undefined),
    signal,
    onProgress: (progress) => post({ type: 'progress', jobId, progress }),
  });
  if (signal.aborted) throw new Cancelled();
  post({ type: 'validated', jobId, result: { metrics: manifestMetrics(result.manifest) } });
}

async function score(jobId: number, job: ScoreJob, signal: AbortSignal): Promise<void> {
  const e = await engine();
  const scorer = await e.openScorer(job.modelDir, {
    cacheDir: job.cacheDir,
    workers: job.workers,
    session: await sessionForCache(job.cacheDir)?.catch(() => undefined),
  });
  try {
    let done = 0;
    for (let k = 0; k < job.items.length; k += SCORE_CHUNK) {
      if (signal.aborted) throw new Cancelled();
      const chunk = job.items.slice(k, k + SCORE_CHUNK);
      const results = await scorer.score(chunk.map((c) => c.path));
      const items: ScoredItem[] = results.map((r, i) =>
        r.ok
          ? {
              id: chunk[i].id,
              ok: true,
              total: r.score.total,
              perHead: { ...r.score.perHead } as Record<string, number>,
              heatmap: r.score.heatmap,
            }
          : { id: chunk[i].id, ok: false, error: r.error },
      );
      done += chunk.length;
      post({ type: 'scored', jobId, items, done, total: job.items.length });
    }
  } finally {
    await scorer.close();
  }
}

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'cancel') {
    aborts.get(msg.jobId)?.abort();
    return;
  }
  if (msg.type === 'info') {
    engine()
      .then((e) => e.systemInfo())
      .then(
        (info) => post({ type: 'info', requestId: msg.requestId, info }),
        (err: unknown) =>
          post({
            type: 'info-failed',
            requestId: msg.requestId,
            message: err instanceof Error ? err.message : String(err),
          }),
      );
    return;
  }
  if (msg.type === 'warm') {
    // Best effort: a job that needs the session meets (and reports) the same failure.
    warm(msg.request).catch(() => undefined);
    return;
  }
  const ctl = new AbortController();
  aborts.set(msg.jobId, ctl);
  const run =
    msg.type === 'train'
      ? train(msg.jobId, msg.job, ctl.signal)
      : msg.type === 'validate'
        ? validate(msg.jobId, msg.job, ctl.signal)
        : score(msg.jobId, msg.job, ctl.signal);
  run
    .then(() =>
      post(
        ctl.signal.aborted ? { type: 'cancelled', jobId: msg.jobId } : { type: 'finished', jobId: msg.jobId },
      ),
    )
    .catch((err: unknown) => {
      if (ctl.signal.aborted || err instanceof Cancelled) post({ type: 'cancelled', jobId: msg.jobId });
      else {
        const e = err instanceof Error ? err : new Error(String(err));
        post({ type: 'failed', jobId: msg.jobId, name: e.name, message: e.message });
      }
    })
    .finally(() => aborts.delete(msg.jobId));
});

post({ type: 'ready' });
