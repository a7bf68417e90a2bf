import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { defaultDataRoot, NAMED_DATASETS, namedDatasetsIn, resolveDataset } from '../../data/datasets';
import { repoRoot } from '../../engine/backbone';
import { tableMarkdown } from '../bench/markdown';
import { METHODS, type Method } from '../bench/methods';
import { gitProvenance } from '../bench/provenance';
import { runTable, type TableResult } from '../bench/table';
import { mergeTables, parseTable } from '../bench/merge';
import { CliError } from '../cli-error';
import type { Setting } from '../../data/types';

interface BenchTableCliOptions {
  dataRoot?: string;
  datasets?: string;
  methods?: string;
  shots: string;
  settings?: string;
  seeds: number;
  seedStart: number;
  input: string;
  square?: boolean;
  backbone: string;
  name: string;
  out: string;
  merge?: string[];
}

const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

export function parseShots(text: string): number[] {
  const shots = list(text).map(Number);
  if (shots.length === 0 || shots.some((n) => !Number.isInteger(n) || n < 1))
    throw new CliError(`--shots expects whole numbers >= 1 separated by commas, got "${text}".`);
  return shots;
}

export function parseMethods(text: string | undefined): Method[] {
  if (text === undefined) return [...METHODS];
  const names = list(text);
  const bad = names.filter((m) => !(METHODS as readonly string[]).includes(m));
  if (bad.length || names.length === 0)
    throw new CliError(`--methods: unknown "${bad.join(', ')}" (known: ${METHODS.join(', ')}).`);
  return names as Method[];
}

async function readTables(files: string[]): Promise<TableResult[]> {
  const out: TableResult[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = await readFile(f, 'utf8');
    } catch (err) {
      throw new CliError(`--merge: cannot read ${f} (${(err as Error).message}).`);
    }
    try {
      out.push(parseTable(text, f));
    } catch (err) {
      throw new CliError(`--merge: ${(err as Error).message}.`);
    }
  }
  return out;
}

export async function runBenchTable(opts: BenchTableCliOptions): Promise<void> {
  const dataRoot = opts.dataRoot ?? defaultDataRoot();
  const earlier = await readTables(opts.merge ?? []);
  const command = `npm run bench:table -- ${process.argv.slice(3).join(' ')}`.trim();
  const out = resolve(opts.out);
  const write = async (table: TableResult) => {
    await mkdir(out, { recursive: true });
    await writeFile(join(out, `${opts.name}.json`), `${JSON.stringify(table, null, 2)}\n`);
    await writeFile(join(out, `${opts.name}.md`), tableMarkdown(table, opts.name));
  };
  const merged = (t?: TableResult) => {
    try {
      return mergeTables(t ? [...earlier, t] : earlier, command);
    } catch (err) {
      throw new CliError(`--merge: ${(err as Error).message}.`);
    }
  };
  // Only merging: no data set or method asked for.
  if (earlier.length && opts.datasets === undefined && opts.methods === undefined) {
    const table = merged();
    await write(table);
    process.stdout.write(tableMarkdown(table, opts.name));
    return;
  }
  const names = opts.datasets ? list(opts.datasets) : namedDatasetsIn(dataRoot);
  const known = NAMED_DATASETS.map((d) => d.name);
  const unknown = names.filter((n) => !known.includes(n) && n !== 'sdd');
  if (unknown.length)
    throw new CliError(`--datasets: unknown "${unknown.join(', ')}" (known: ${known.join(', ')}).`);
  if (names.length === 0) throw new CliError(`No named data set found in ${dataRoot} (${known.join(', ')}).`);
  const shots = parseShots(opts.shots);
  const settings = opts.settings ? list(opts.settings) : undefined;
  const badSetting = settings?.filter((s) => s !== 'general' && s !== 'hard') ?? [];
  if (badSetting.length || settings?.length === 0)
    throw new CliError(`--settings: expects general and/or hard, got "${opts.settings}".`);
  const methods = parseMethods(opts.methods);
  if (!/^[\w.-]+$/.test(opts.name)) throw new CliError(`--name: "${opts.name}" is not a plain file name.`);
  const datasets = [];
  for (const n of names) {
    const ds = await resolveDataset(n, { dataRoot });
    for (const w of ds.warnings) process.stderr.write(`warning: ${w}\n`);
    datasets.push(ds);
  }
  const root = repoRoot();
  const fresh = await runTable({
    datasets,
    methods,
    shots,
    ...(settings ? { settings: settings as Setting[] } : {}),
    seeds: opts.seeds,
    seedStart: opts.seedStart,
    inputSize: Number(opts.input),
    square: opts.square === true,
    backbone: opts.backbone,
    provenance: gitProvenance(root),
    command,
    log: (line) => process.stderr.write(`${line}\n`),
    onPartial: (t) => write(earlier.length ? merged(t) : t),
  });
  const table = earlier.length ? merged(fresh) : fresh;
  await write(table);
  process.stdout.write(tableMarkdown(table, opts.name));
  process.stderr.write(
    `wrote ${join(out, `${opts.name}.md`)} and .json (${table.seconds.total.toFixed(0)} s)\n`,
  );
}
