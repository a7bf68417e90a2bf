/**
 * A window onto a (possibly huge) filtered, sorted image list: only the pages the view
 * shows are fetched, and a change invalidates the cache instead of refetching everything.
 */
import { computed, ref, shallowRef, triggerRef } from 'vue';
import { api } from '../api';
import type { OpInput, OpOutput } from '../api/client';

export type ImageSummary = OpOutput<'images.list'>['items'][number];
export type ImageFilter = NonNullable<OpInput<'images.list'>['filter']>;
export type ImageSort = NonNullable<OpInput<'images.list'>['sort']>;

const PAGE = 200;

export function usePagedImages(initial: { filter?: ImageFilter; sort?: ImageSort } = {}) {
  const filter = ref<ImageFilter>(initial.filter ?? {});
  const sort = ref<ImageSort>(initial.sort ?? 'imported');
  const total = ref(0);
  const pages = shallowRef(new Map<number, ImageSummary[]>());
  const pending = new Map<number, Promise<void>>();
  let generation = 0;
  const loading = ref(false);

  async function fetchPage(page: number): Promise<void> {
    const gen = generation;
    const res = await api().call('images.list', {
      offset: page * PAGE,
      limit: PAGE,
      filter: filter.value,
      sort: sort.value,
    });
    // A reset while this request was in flight makes its answer stale.
    if (gen !== generation) return;
    total.value = res.total;
    pages.value.set(page, res.items);
    triggerRef(pages);
  }

  function ensure(page: number): Promise<void> {
    if (pages.value.has(page)) return Promise.resolve();
    let p = pending.get(page);
    if (!p) {
      p = fetchPage(page).finally(() => pending.delete(page));
      pending.set(page, p);
    }
    return p;
  }

  /** Loads the pages covering indices [start, end). */
  async function ensureRange(start: number, end: number): Promise<void> {
    const first = Math.floor(start / PAGE);
    const last = Math.floor(Math.max(start, end - 1) / PAGE);
    const jobs: Promise<void>[] = [];
    for (let p = first; p <= last; p++) jobs.push(ensure(p));
    await Promise.all(jobs);
  }

  function at(index: number): ImageSummary | undefined {
    return pages.value.get(Math.floor(index / PAGE))?.[index % PAGE];
  }

  let lastRange: [number, number] = [0, PAGE];
  function setRange(start: number, end: number): void {
    lastRange = [start, end];
    void ensureRange(start, end);
  }

  /** Drops the cache and reloads what is on screen. */
  async function reload(): Promise<void> {
    generation++;
    pending.clear();
    loading.value = true;
    try {
      const fresh = new Map<number, ImageSummary[]>();
      const gen = generation;
      const first = Math.floor(lastRange[0] / PAGE);
      const last = Math.floor(Math.max(lastRange[0], lastRange[1] - 1) / PAGE);
      let newTotal = 0;
      for (let p = first; p <= last; p++) {
        const res = await api().call('images.list', {
          offset: p * PAGE,
          limit: PAGE,
          filter: filter.value,
          sort: sort.value,
        });
        if (gen !== generation) return;
        newTotal = res.total;
        fresh.set(p, res.items);
        if (res.items.length < PAGE) break;
      }
      if (first > 0 && newTotal === 0) {
        const res = await api().call('images.list', {
          offset: 0,
          limit: PAGE,
          filter: filter.value,
          sort: sort.value,
        });
        if (gen !== generation) return;
        newTotal = res.total;
        fresh.set(0, res.items);
      }
      total.value = newTotal;
      pages.value = fresh;
    } finally {
      loading.value = false;
    }
  }

  /** Applies a local change (e.g. a label just set) without a round trip. */
  function patch(ids: Set<number>, change: Partial<ImageSummary>): void {
    for (const items of pages.value.values()) {
      for (let i = 0; i < items.length; i++) {
        const it = items[i] as ImageSummary;
        if (ids.has(it.id)) items[i] = { ...it, ...change };
      }
    }
    triggerRef(pages);
  }

  const indices = computed(() => Array.from({ length: total.value }, (_, i) => i));

  return { filter, sort, total, pages, loading, indices, at, setRange, ensureRange, reload, patch };
}
