import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import { api } from '../api';
import type { EventPayload, OpInput, OpOutput } from '../api/client';

type Progress = EventPayload<'training.progress'>;
type Finished = EventPayload<'training.finished'>;
type TrainingRun = OpOutput<'training.runs'>['runs'][number];
type ModelInfo = OpOutput<'models.list'>['models'][number];
export type TrainSettings = NonNullable<OpInput<'training.start'>['settings']>;

/** Stages of a retrain in the order they run; scoring of every image follows the training run. */
const STAGE_ORDER = ['queued', 'features', 'pseudo', 'train', 'reference', 'calibrate', 'validate', 'save', 'scoring'];
const STAGE_KEY = 'swan-stage-seconds';
function loadStageSeconds(): Record<string, number> {
  try {
    const v = JSON.parse(localStorage.getItem(STAGE_KEY) ?? '{}') as unknown;
    return v && typeof v === 'object' ? (v as Record<string, number>) : {};
  } catch {
    return {};
  }
}
function saveStageSeconds(v: Record<string, number>): void {
  try {
    localStorage.setItem(STAGE_KEY, JSON.stringify(v));
  } catch {
    // Storage full or off: the ETA falls back to the stage's own.
  }
}

export interface LossPoint {
  step: number;
  value: number;
}

/**
 * The training run and scoring job in flight, fed by server events. Lives outside the
 * Train view so progress keeps accumulating while the inspector looks elsewhere.
 */
export const useTrainingStore = defineStore('training', () => {
  const runId = ref<number | null>(null);
  const progress = ref<Progress | null>(null);
  const losses = ref<Record<string, LossPoint[]>>({});
  const lastFinished = ref<Finished | null>(null);
  const runs = ref<TrainingRun[]>([]);
  const models = ref<ModelInfo[]>([]);
  const scoring = ref<{ done: number; total: number; active: boolean }>({ done: 0, total: 0, active: false });
  const running = computed(() => runId.value !== null);
  const activeModel = computed(() => models.value.find((m) => m.active) ?? null);

  /**
   * One ETA for the whole retrain: the stage in progress (its own ETA, else what it took
   * last time minus its time so far) plus what every later stage, and the scoring after,
   * took in the last run (kept in this browser). Null until a stage's cost is known.
   */
  const stageStarted = new Map<string, number>();
  const stageSeconds = ref<Record<string, number>>(loadStageSeconds());
  const now = ref(Date.now());
  setInterval(() => (now.value = Date.now()), 1000);
  function markStage(stage: string): void {
    if (stageStarted.has(stage)) return;
    const t = Date.now();
    const prev = [...stageStarted.keys()].pop();
    if (prev) stageSeconds.value = { ...stageSeconds.value, [prev]: (t - stageStarted.get(prev)!) / 1000 };
    stageStarted.set(stage, t);
  }
  const etaSeconds = computed<number | null>(() => {
    const p = progress.value;
    if (!p) return null;
    const i = STAGE_ORDER.indexOf(p.stage);
    const last = loadStageSeconds();
    const started = stageStarted.get(p.stage);
    const elapsed = started ? (now.value - started) / 1000 : 0;
    const current =
      p.etaSeconds ?? (last[p.stage] !== undefined ? Math.max(0, last[p.stage] - elapsed) : undefined);
    if (current === undefined) return null;
    let rest = 0;
    for (const s of STAGE_ORDER.slice(i + 1)) {
      if (last[s] === undefined) continue;
      rest += last[s];
    }
    return current + rest;
  });

  function onProgress(p: Progress): void {
    if (runId.value === null) runId.value = p.runId;
    if (p.runId !== runId.value) return;
    progress.value = p;
    markStage(p.stage);
    if (p.stage === 'train' && p.losses) {
      const next = { ...losses.value };
      for (const [head, value] of Object.entries(p.losses)) {
        if (!Number.isFinite(value)) continue;
        next[head] = [...(next[head] ?? []), { step: p.step, value }];
      }
      losses.value = next;
    }
  }

  async function onFinished(f: Finished): Promise<void> {
    lastFinished.value = f;
    if (f.status === 'done') markStage('scoring');
    runId.value = null;
    progress.value = null;
    await refresh();
  }

  async function refresh(): Promise<void> {
    const [status, r, m, s] = await Promise.all([
      api().call('training.status', {}),
      api().call('training.runs', {}),
      api().call('models.list', {}),
      api().call('scoring.status', {}),
    ]);
    runs.value = r.runs;
    models.value = m.models;
    if (status.run?.status === 'running') {
      runId.value = status.run.id;
      progress.value = status.progress;
      // A reload mid-run: the whole curve so far, not from the reload on.
      if (Object.keys(status.losses).length >= Object.keys(losses.value).length) losses.value = status.losses;
    } else if (status.lastFinished && !lastFinished.value) {
      lastFinished.value = status.lastFinished;
      losses.value = status.losses;
    }
    scoring.value = { done: s.done, total: s.total, active: s.job !== null };
  }

  async function start(settings: TrainSettings): Promise<void> {
    losses.value = {};
    stageStarted.clear();
    lastFinished.value = null;
    progress.value = null;
    const res = await api().call('training.start', { settings });
    runId.value = res.runId;
  }

  async function cancel(): Promise<void> {
    await api().call('training.cancel', runId.value ? { runId: runId.value } : {});
  }

  function subscribe(): () => void {
    const offs = [
      api().on('training.progress', onProgress),
      api().on('training.finished', (f) => void onFinished(f)),
      // The model's held-out metrics and status changed (ModelInfo.validation): no longer provisional.
      api().on('validation.finished', () => void refresh()),
      api().on('scoring.progress', (p) => {
        scoring.value = { done: p.done, total: p.total, active: p.done < p.total };
      }),
      api().on('scoring.finished', () => {
        scoring.value = { ...scoring.value, active: false };
        const started = stageStarted.get('scoring');
        if (started) {
          stageSeconds.value = { ...stageSeconds.value, scoring: (Date.now() - started) / 1000 };
          saveStageSeconds(stageSeconds.value);
          stageStarted.clear();
        }
      }),
    ];
    return () => offs.forEach((off) => off());
  }

  return {
    runId,
    progress,
    losses,
    lastFinished,
    runs,
    models,
    scoring,
    running,
    activeModel,
    etaSeconds,
    refresh,
    start,
    cancel,
    subscribe,
  };
});
