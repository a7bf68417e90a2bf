import { defineStore } from 'pinia';
import { ref } from 'vue';

export interface Notice {
  id: number;
  kind: 'info' | 'error';
  text: string;
}

/** Transient messages (errors from the server, worker crashes) shown in a corner. */
export const useNotices = defineStore('notices', () => {
  const items = ref<Notice[]>([]);
  let next = 1;
  function push(kind: Notice['kind'], text: string, ms = kind === 'error' ? 8000 : 4000): void {
    const id = next++;
    items.value.push({ id, kind, text });
    setTimeout(() => dismiss(id), ms);
  }
  function dismiss(id: number): void {
    items.value = items.value.filter((n) => n.id !== id);
  }
  function error(err: unknown): void {
    push('error', err instanceof Error ? err.message : String(err));
  }
  return { items, push, dismiss, error };
});
