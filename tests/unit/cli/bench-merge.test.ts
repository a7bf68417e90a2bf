import { describe, expect, it } from 'vitest';
import type { BenchResult } from '../../../src-main/cli/bench/harness';
import { tableMarkdown } from '../../../src-main/cli/bench/markdown';
import { MergeError, mergeTables, parseTable } from '../../../src-main/cli/bench/merge';
import type { TableResult } from '../../../src-main/cli/bench/table';

const stat = (mean: number) => ({ mean, std: 0 });
const row = (dataset: string, method: BenchResult['method'], auc: number, shots = 10): BenchResult => ({
  dataset,
  setting: 'general',
  shots,
  seeds: 3,
  seed_start: 100,
  method,
  label: method,
  backend: 'wasm',
  backbone: { id: 'm', featureLayer: 'l', inputSize: 224, levels: 2 },
  auc_roc: stat(auc),
  ap: stat(auc),
  per_head: {},
  per_class: [],
  runs: [],
  seconds: { features: 0, train: 0, score: 0, total: 1 },
});
const table = (commit: string, results: BenchResult[], over: Partial<TableResult> = {}): TableResult => ({
  command: 'x',
  created: '2026-12-01T14:00:00.000Z',
  commit,
  dirty: false,
  backend: 'wasm',
  backbone: { id: 'm', featureLayer: 'l', inputSize: 224, levels: 2 },
  seed_start: 100,
  seeds: 3,
  shots: [10],
  methods: Object.fromEntries(results.map((r) => [r.method, null])),
  results,
  seconds: { total: 10, per_dataset: { [results[0].dataset]: 10 } },
  ...over,
});

describe('merging benchmark tables', () => {
  it('keeps every row with the commit it was measured at, a later table winning a row both hold', () => {
    const a = table('aaaaaaaaaaaa', [row('elpv', 'knn', 0.8), row('elpv', 'swan', 0.85)]);
    const b = table('bbbbbbbbbbbb', [row('headct', 'swan', 0.97), row('elpv', 'swan', 0.9)]);
    const m = mergeTables([a, b], 'merge');
    expect(m.results.map((r) => `${r.dataset}/${r.method}/${r.auc_roc.mean}/${r.commit}`)).toEqual([
      'headct/swan/0.97/bbbbbbbbbbbb',
      'elpv/swan/0.9/bbbbbbbbbbbb',
      'elpv/knn/0.8/aaaaaaaaaaaa',
    ]);
    expect(m.seconds).toEqual({ total: 20, per_dataset: { elpv: 10, headct: 10 } });
    expect(tableMarkdown(m, 't')).toContain(
      'Merged from runs at several commits: bbbbbbbbbb (swan); aaaaaaaaaa (knn)',
    );
  });

  it('refuses tables of other seeds or another backbone, and files that are not tables', () => {
    const a = table('a', [row('elpv', 'knn', 0.8)]);
    expect(() => mergeTables([a, table('b', [row('elpv', 'knn', 0.8)], { seed_start: 0 })], 'm')).toThrow(
      MergeError,
    );
    const other = { id: 'resnet', featureLayer: 'l', inputSize: 224, levels: 2 };
    expect(() => mergeTables([a, table('b', [row('elpv', 'knn', 0.8)], { backbone: other })], 'm')).toThrow(
      /backbones differ/,
    );
    expect(() =>
      mergeTables([a, table('b', [row('elpv', 'knn', 0.8)], { backend: 'cpu (pure JS)' })], 'm'),
    ).toThrow(/backends differ/);
    // The same backend, whatever its description says about the native ones that did not load.
    const wasm = (why: string) =>
      table('c', [row('elpv', 'swan', 0.9)], { backend: `wasm (WebAssembly; ${why})` });
    expect(
      mergeTables([wasm('tfjs-node not installed'), wasm('tfjs-node libtensorflow missing')], 'm').results,
    ).toHaveLength(1);
    expect(() => parseTable('{"results": 3}', 'f.json')).toThrow(/not a table/);
    expect(() => parseTable('{', 'f.json')).toThrow(/not JSON/);
    expect(parseTable(JSON.stringify(a), 'a.json').results).toHaveLength(1);
  });
});
