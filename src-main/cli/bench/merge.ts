/**
 * Tables merged into one: runs split over processes (one per data set), or a re-run of some
 * methods at a newer commit beside the rows of an earlier run. Every result keeps the commit it
 * was measured at; a later table's row replaces an earlier one's.
 */
import { NAMED_DATASETS } from '../../data/datasets';
import type { BenchResult } from './harness';
import { METHODS } from './methods';
import type { TableResult } from './table';

export class MergeError extends Error {}

function rowKey(r: BenchResult): string {
  return `${r.dataset}/${r.setting}/${r.shots}/${r.method}`;
}

function order(r: BenchResult): number[] {
  const d = NAMED_DATASETS.findIndex((x) => x.name === r.dataset);
  return [
    d < 0 ? NAMED_DATASETS.length : d,
    r.setting === 'general' ? 0 : 1,
    -r.shots,
    METHODS.indexOf(r.method),
  ];
}

function byOrder(a: BenchResult, b: BenchResult): number {
  const x = order(a);
  const y = order(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
}

/**
 * The backend a description names ("wasm (WebAssembly, ...; no native backend: ...)" -> "wasm"):
 * the parenthesis says why no other one loaded, which changes with what is installed.
 */
function backendName(description: string): string {
  return description.split(' (')[0].trim();
}

/** Later tables win a row both hold. Seeds, backend and backbone must agree. */
export function mergeTables(tables: TableResult[], command: string): TableResult {
  if (tables.length === 0) throw new MergeError('nothing to merge');
  const first = tables[0];
  for (const t of tables) {
    if (t.seed_start !== first.seed_start || t.seeds !== first.seeds)
      throw new MergeError(`seeds differ: ${t.seed_start}+${t.seeds} and ${first.seed_start}+${first.seeds}`);
    if (JSON.stringify(t.backbone) !== JSON.stringify(first.backbone))
      throw new MergeError(
        `backbones differ: ${JSON.stringify(t.backbone)} and ${JSON.stringify(first.backbone)}`,
      );
    if (backendName(t.backend) !== backendName(first.backend))
      throw new MergeError(`backends differ: ${t.backend} and ${first.backend}`);
  }
  const rows = new Map<string, BenchResult>();
  const methods: TableResult['methods'] = {};
  const perDataset: Record<string, number> = {};
  let patchcore = first.patchcore;
  for (const t of tables) {
    for (const r of t.results) rows.set(rowKey(r), { ...r, commit: r.commit ?? t.commit ?? undefined });
    Object.assign(methods, t.methods);
    for (const [d, s] of Object.entries(t.seconds.per_dataset)) perDataset[d] = (perDataset[d] ?? 0) + s;
    patchcore = t.patchcore ?? patchcore;
  }
  const last = tables[tables.length - 1];
  return {
    ...last,
    command,
    created: new Date().toISOString(),
    shots: [...new Set(tables.flatMap((t) => t.shots))].sort((a, b) => b - a),
    methods,
    ...(patchcore ? { patchcore } : {}),
    results: [...rows.values()].sort(byOrder),
    seconds: { total: tables.reduce((s, t) => s + t.seconds.total, 0), per_dataset: perDataset },
  };
}

/** Reads a table JSON written by bench:table, refusing anything else. */
export function parseTable(text: string, file: string): TableResult {
  let t: unknown;
  try {
    t = JSON.parse(text);
  } catch (err) {
    throw new MergeError(`${file}: not JSON (${(err as Error).message})`);
  }
  const o = t as Partial<TableResult>;
  if (
    !o ||
    typeof o !== 'object' ||
    !Array.isArray(o.results) ||
    typeof o.seed_start !== 'number' ||
    typeof o.seeds !== 'number' ||
    !o.seconds ||
    !o.methods
  )
    throw new MergeError(`${file}: not a table written by bench:table (results, seed_start, seeds, methods)`);
  return o as TableResult;
}
