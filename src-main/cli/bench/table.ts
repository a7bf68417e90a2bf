/**
 * The whole benchmark table in one run: every data set, both settings where they apply (hard:
 * two or more anomaly classes), every shot count, every method, the same seeds for all. Features
 * are extracted once per data set (and cached on disk); the runs of one seed share its pseudo
 * anomalies.
 */
import { performance } from 'node:perf_hooks';
import type { Dataset, Setting } from '../../data/types';
import type { TrainSettings } from '../../engine/types';
import {
  backboneInfo,
  BenchDataset,
  BenchSessions,
  casesOf,
  logShape,
  usesPatchCoreLayers,
  patchCoreLayerNames,
  seedList,
  summarise,
  type BackboneInfo,
  type BenchHooks,
  type BenchResult,
  type RunResult,
} from './harness';
import { isTrained, methodSettings, type Method } from './methods';
import type { Provenance } from './provenance';
import { PATCHCORE_DEFAULTS, type PatchCoreOptions } from '../../engine/infer/patchcore';

export interface TableOptions extends BenchHooks {
  datasets: Dataset[];
  methods: Method[];
  shots: number[];
  /** Only these settings (absent: both where they apply, settingsOf). */
  settings?: Setting[];
  seeds: number;
  seedStart: number;
  inputSize: number;
  /** Keep the square input even for elongated images. */
  square?: boolean;
  /** 'mobilenet' (default) or 'resnet50'. */
  backbone?: string;
  featureLayer?: string;
  cacheDir?: string;
  provenance: Provenance;
  /** The command line that produced the table, recorded with it. */
  command: string;
  /** Called with the table so far after each data set (a long run keeps what it finished). */
  onPartial?: (table: TableResult) => Promise<void>;
}

export interface TableResult {
  command: string;
  created: string;
  commit: string | null;
  dirty: boolean | null;
  backend: string;
  backbone: BackboneInfo;
  seed_start: number;
  seeds: number;
  shots: number[];
  /** What each trained method ran (seed aside); null for the untrained ones. */
  methods: Partial<Record<Method, Omit<TrainSettings, 'seed'> | null>>;
  /** PatchCore's layers (finest first) and bank options, when it ran. */
  patchcore?: { layers: string[]; options: PatchCoreOptions };
  results: BenchResult[];
  seconds: { total: number; per_dataset: Record<string, number> };
}

/** The settings a data set is run in: general always, hard with two or more anomaly classes. */
export function settingsOf(ds: Dataset, shots: number[], only?: readonly Setting[]): Setting[] {
  const most = Math.max(...shots);
  const hard =
    ds.anomalyClasses.length >= 2 &&
    ds.anomalyClasses.every((c) => ds.items.filter((it) => it.label === 1 && it.cls === c).length >= most);
  const all: Setting[] = hard ? ['general', 'hard'] : ['general'];
  return only ? all.filter((s) => only.includes(s)) : all;
}

export async function runTable(opts: TableOptions): Promise<TableResult> {
  const t0 = performance.now();
  const sessions = new BenchSessions({ ...opts, patchcore: usesPatchCoreLayers(opts.methods) });
  // The table's own backbone line is the square session's; a row of elongated images says its shape.
  const { session, patch } = await sessions.of(undefined);
  const results: BenchResult[] = [];
  const perDataset: Record<string, number> = {};
  const snapshot = (): TableResult => {
    const methods: TableResult['methods'] = {};
    for (const m of opts.methods) {
      if (!isTrained(m)) {
        methods[m] = null;
        continue;
      }
      const { seed: _seed, ...s } = methodSettings(m);
      methods[m] = s;
    }
    return {
      command: opts.command,
      created: new Date().toISOString(),
      commit: opts.provenance.commit,
      dirty: opts.provenance.dirty,
      backend: session.backend.description,
      backbone: backboneInfo(session),
      seed_start: opts.seedStart,
      seeds: opts.seeds,
      shots: opts.shots,
      methods,
      ...(patch
        ? {
            patchcore: {
              layers: patchCoreLayerNames(patch, session),
              options: { ...PATCHCORE_DEFAULTS, ...patch.options },
            },
          }
        : {}),
      results,
      seconds: { total: (performance.now() - t0) / 1000, per_dataset: perDataset },
    };
  };
  try {
    opts.log?.(`backend: ${session.backend.description}`);
    const key = (s: Setting, shots: number, m: Method) => `${s}/${shots}/${m}`;
    const opened: BenchDataset[] = [];
    const runs = opts.datasets.map(() => new Map<string, RunResult[]>());
    // Every data set's rows from the runs so far.
    const rows = (): BenchResult[] =>
      opened.flatMap((data, i) =>
        settingsOf(data.ds, opts.shots, opts.settings).flatMap((setting) =>
          opts.shots.flatMap((shots) =>
            opts.methods.flatMap((method) => {
              const got = runs[i].get(key(setting, shots, method));
              if (!got?.length) return [];
              const ctx = {
                dataset: data.ds.name,
                setting,
                shots,
                seedStart: opts.seedStart,
                method,
                overrides: {},
                backend: session.backend.description,
                backbone: backboneInfo(data.session),
              };
              const time = { features: data.featureSeconds, total: perDataset[data.ds.name] ?? 0 };
              return [summarise(ctx, got, time)];
            }),
          ),
        ),
      );
    // Seeds outermost, over every data set: the table after each seed is a whole table of fewer
    // seeds. The runs of one seed and data set share its training normals' pseudo anomalies.
    for (const seed of seedList(opts.seedStart, opts.seeds)) {
      for (let i = 0; i < opts.datasets.length; i++) {
        const ds = opts.datasets[i];
        const td = performance.now();
        if (!opened[i]) {
          const own = await sessions.for(ds);
          logShape(opts, ds, own.session);
          opened[i] = await BenchDataset.open(ds, own.session, opts, own.patch);
        }
        const data = opened[i];
        for (const setting of settingsOf(ds, opts.shots, opts.settings)) {
          for (const knownClass of casesOf(ds, setting)) {
            for (const shots of opts.shots) {
              for (const method of opts.methods) {
                const run = await data.run({ setting, shots, seed, knownClass, method });
                const k = key(setting, shots, method);
                runs[i].set(k, [...(runs[i].get(k) ?? []), run]);
              }
            }
          }
        }
        const seconds = (performance.now() - td) / 1000;
        perDataset[ds.name] = (perDataset[ds.name] ?? 0) + seconds;
        opts.log?.(`${ds.name} seed ${seed}: ${seconds.toFixed(0)} s`);
        results.splice(0, results.length, ...rows());
        await opts.onPartial?.(snapshot());
      }
    }
  } finally {
    await sessions.close();
  }
  return snapshot();
}
