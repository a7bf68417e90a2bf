import { defineStore } from 'pinia';
import { ref } from 'vue';
import { api } from '../api';
import type { OpOutput } from '../api/client';

type Scale = OpOutput<'threshold.get'>['scale'];

/**
 * The active model's readable score scale (api/threshold.ts scoreScale), for the views that
 * show scores without asking for the threshold themselves (the gallery).
 */
export const useScoreScale = defineStore('scoreScale', () => {
  const scale = ref<Scale>(null);
  let watching = false;
  async function refresh(): Promise<void> {
    try {
      scale.value = (await api().call('threshold.get', {})).scale;
    } catch {
      scale.value = null;
    }
  }
  function watch(): void {
    if (watching) return;
    watching = true;
    void refresh();
    api().on('project.changed', (e) => {
      if (e.what !== 'images' && e.what !== 'classes') void refresh();
    });
    api().on('scoring.finished', () => void refresh());
  }
  /** A raw score on the readable scale, as text. */
  function shown(raw: number | null | undefined, digits = 2): string {
    if (raw === null || raw === undefined) return '—';
    const s = scale.value;
    return (s ? (raw - s.offset) / s.unit : raw).toFixed(digits);
  }
  return { scale, refresh, watch, shown };
});
