import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import { api } from '../api';
import type { EventPayload, OpInput, OpOutput } from '../api/client';

type Progress = EventPayload<'training.progress'>;
type Finished = EventPayload<'training.finished'>;
type TrainingRun = OpOutput<'training.runs'>['runs'][number];
type ModelInfo = OpOutput<'models.list'>['models'][number];
export type TrainSettings = NonNullable<OpInput<'training.start'>['settings']>;

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

  function onProgress(p: Progress): void {
    if (runId.value === null) runId.value = p.runId;
    if (p.runId !== runId.value) return;
    progress.value = p;
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
    }
    scoring.value = { done: s.done, total: s.total, active: s.job !== null };
  }

  async function start(settings: TrainSettings): Promise<void> {
    losses.value = {};
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
      api().on('scoring.progress', (p) => {
        scoring.value = { done: p.done, total: p.total, active: p.done < p.total };
      }),
      api().on('scoring.finished', () => {
        scoring.value = { ...scoring.value, active: false };
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
    refresh,
    start,
    cancel,
    subscribe,
  };
});
