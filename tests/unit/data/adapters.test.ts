import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import {
  loadCsv,
  loadElpv,
  loadFolders,
  loadHeadct,
  loadKolektorSdd,
  loadMvtec,
} from '../../../src-main/data/adapters';
import { DataError } from '../../../src-main/data/data-error';
import { defaultDataRoot, resolveDataset } from '../../../src-main/data/datasets';
import type { Dataset } from '../../../src-main/data/types';

let root: string;
const at = (...parts: string[]): string => join(root, ...parts);

async function png(path: string, grey = 128): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: grey, g: grey, b: grey } } })
    .png()
    .toFile(path);
}

function text(path: string, body: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, body);
}

async function expectDataError(p: Promise<unknown>, ...parts: (string | RegExp)[]): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DataError);
  const msg = (err as Error).message;
  for (const part of parts) {
    if (typeof part === 'string') expect(msg).toContain(part);
    else expect(msg).toMatch(part);
  }
  return msg;
}

const byClass = (ds: Dataset): Record<string, number> =>
  ds.items.reduce<Record<string, number>>((acc, i) => ({ ...acc, [i.cls]: (acc[i.cls] ?? 0) + 1 }), {});

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'swan-adapters-'));
  // MVTec layout.
  for (const n of ['000', '001', '002']) await png(at('bottle', 'train', 'good', `${n}.png`));
  for (const n of ['000', '001']) await png(at('bottle', 'test', 'good', `${n}.png`));
  for (const n of ['000', '001']) await png(at('bottle', 'test', 'crack', `${n}.png`), 30);
  await png(at('bottle', 'test', 'scratch', '000.png'), 200);
  await png(at('bottle', 'ground_truth', 'crack', '000_mask.png'), 255);
  text(at('bottle', 'test', 'crack', 'notes.txt'), 'not an image');
  text(at('bottle', 'test', 'crack', '.DS_Store'), 'x');
  // Folders layout.
  for (const n of ['a', 'b', 'c']) await png(at('parts', 'ok', `${n}.png`));
  for (const n of ['a', 'b']) await png(at('parts', 'dent', `${n}.png`), 40);
  // CSV layout, paths relative to the CSV.
  for (const n of ['n1', 'n2', 'n3']) await png(at('csvset', 'img', `${n}.png`));
  for (const n of ['d1', 'd2']) await png(at('csvset', 'img', `${n}.png`), 20);
  text(
    at('csvset', 'labels.csv'),
    [
      'path,label,class',
      'img/n1.png,0',
      'img/n2.png,good,',
      'img/n3.png, 0 ',
      'img/d1.png,1,hole',
      'img/d2.png,defect',
      'img/gone.png,1,hole',
      'img/n1.png,maybe',
      '',
    ].join('\n'),
  );
  // Miniature head CT and ELPV with their real label formats.
  for (const id of [0, 1, 2, 3]) await png(at('headct', 'head_ct', `${String(id).padStart(3, '0')}.png`));
  text(at('headct', 'labels.csv'), 'id, hemorrhage\n0,1\n1,1\n2,0\n3,0\n4,0\n');
  for (const n of ['0001', '0002', '0003', '0004', '0005']) await png(at('elpv', 'images', `cell${n}.png`));
  text(
    at('elpv', 'labels.csv'),
    [
      'images/cell0001.png  1.0                 mono',
      'images/cell0002.png  0.0                 mono',
      'images/cell0003.png  0.3333333333333333  poly',
      'images/cell0004.png  1.0                 poly',
      'images/cell0005.png  0.0                 poly',
      'images/cell0006.png  1.0                 poly',
      '',
    ].join('\n'),
  );
  // Miniature KolektorSDD: labels.csv path,label and masks/<name>.png (one mask missing).
  for (const n of ['kos01_Part0', 'kos01_Part1', 'kos02_Part0']) await png(at('sdd', 'images', `${n}.jpg`));
  await png(at('sdd', 'masks', 'kos01_Part0.png'), 0);
  await png(at('sdd', 'masks', 'kos01_Part1.png'), 255);
  text(
    at('sdd', 'labels.csv'),
    [
      'path,label',
      'images/kos01_Part0.jpg,good',
      'images/kos01_Part1.jpg,defect',
      'images/kos02_Part0.jpg,defect',
      'images/kos03_Part0.jpg,good',
      'images/kos01_Part0.jpg,perhaps',
      '',
    ].join('\n'),
  );
  // A named-data-set root holding the two new sets the way ../shared/datasets does.
  mkdirSync(at('named'), { recursive: true });
  for (const n of ['000', '001']) await png(at('named', 'mvtec_bottle', 'train', 'good', `${n}.png`));
  await png(at('named', 'mvtec_bottle', 'test', 'good', '000.png'));
  await png(at('named', 'mvtec_bottle', 'test', 'broken_large', '000.png'), 10);
  await png(at('named', 'mvtec_bottle', 'ground_truth', 'broken_large', '000_mask.png'), 255);
  text(at('named', 'kolektorsdd', 'labels.csv'), 'path,label\nimages/a.jpg,good\nimages/b.jpg,defect\n');
  await png(at('named', 'kolektorsdd', 'images', 'a.jpg'));
  await png(at('named', 'kolektorsdd', 'images', 'b.jpg'), 5);
  mkdirSync(at('empty'), { recursive: true });
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('loadMvtec', () => {
  it('reads train/good, test/good and the defect classes with the fixed split', async () => {
    const ds = await loadMvtec(at('bottle'));
    expect(ds.name).toBe('mvtec:bottle');
    expect(ds.root).toBe(at('bottle'));
    expect(ds.anomalyClasses).toEqual(['crack', 'scratch']);
    expect(byClass(ds)).toEqual({ good: 5, crack: 2, scratch: 1 });
    expect(ds.fixedSplit?.trainNormals.map((i) => i.path)).toEqual(
      ['000', '001', '002'].map((n) => at('bottle', 'train', 'good', `${n}.png`)),
    );
    expect(ds.fixedSplit?.testNormals).toHaveLength(2);
    // Split members are the dataset's own items (splits rely on identity).
    for (const i of ds.fixedSplit!.testNormals) expect(ds.items).toContain(i);
    expect(ds.items.filter((i) => i.label === 1).every((i) => i.cls !== 'good')).toBe(true);
    expect(ds.items.some((i) => i.path.includes('ground_truth'))).toBe(false);
    // Masks: only where ground_truth has one; normals have none.
    const crack0 = ds.items.find((i) => i.path === at('bottle', 'test', 'crack', '000.png'));
    expect(crack0?.mask).toBe(at('bottle', 'ground_truth', 'crack', '000_mask.png'));
    expect(ds.items.filter((i) => i.mask).map((i) => i.path)).toEqual([crack0!.path]);
    expect(ds.warnings).toHaveLength(1);
    expect(ds.warnings[0]).toContain('notes.txt');
  });

  it('names the folder and the expected layout when it is not MVTec', async () => {
    await expectDataError(loadMvtec(at('parts')), at('parts', 'train', 'good'), 'MVTec AD layout');
    await expectDataError(loadMvtec(at('nowhere')), at('nowhere'), 'folder not found');
  });
});

describe('loadFolders', () => {
  it('reads one folder per class with the named one normal', async () => {
    const ds = await loadFolders(at('parts'), 'ok');
    expect(ds.anomalyClasses).toEqual(['dent']);
    expect(byClass(ds)).toEqual({ good: 3, dent: 2 });
    expect(ds.items.filter((i) => i.label === 0).every((i) => i.path.startsWith(at('parts', 'ok')))).toBe(
      true,
    );
    expect(ds.fixedSplit).toBeUndefined();
  });

  it('refuses a missing normal folder, listing the folders found', async () => {
    await expectDataError(loadFolders(at('parts'), 'good'), at('parts'), '"good"', 'dent, ok');
  });

  it('refuses a folder without images', async () => {
    mkdirSync(at('hollow', 'ok'), { recursive: true });
    await expectDataError(loadFolders(at('hollow'), 'ok'), at('hollow', 'ok'), 'no images found');
  });
});

describe('loadCsv', () => {
  it('reads path,label[,class] relative to the CSV, with header and label words', async () => {
    const ds = await loadCsv(at('csvset', 'labels.csv'));
    expect(ds.name).toBe('csv:labels.csv');
    expect(ds.root).toBe(at('csvset'));
    expect(ds.items.map((i) => [i.path, i.label, i.cls])).toEqual([
      [at('csvset', 'img', 'n1.png'), 0, 'good'],
      [at('csvset', 'img', 'n2.png'), 0, 'good'],
      [at('csvset', 'img', 'n3.png'), 0, 'good'],
      [at('csvset', 'img', 'd1.png'), 1, 'hole'],
      [at('csvset', 'img', 'd2.png'), 1, 'defect'],
    ]);
    expect(ds.anomalyClasses).toEqual(['defect', 'hole']);
  });

  it('turns a missing file and a bad label into warnings, not crashes', async () => {
    const ds = await loadCsv(at('csvset', 'labels.csv'));
    expect(ds.warnings).toHaveLength(2);
    expect(ds.warnings.some((w) => w.includes('gone.png') && w.includes('missing'))).toBe(true);
    expect(ds.warnings.some((w) => w.includes('line 8') && w.includes('"maybe"'))).toBe(true);
  });

  it('refuses a missing CSV and one with no usable rows', async () => {
    await expectDataError(loadCsv(at('csvset', 'nope.csv')), at('csvset', 'nope.csv'), 'file not found');
    text(at('csvset', 'junk.csv'), 'hello\nworld\n');
    await expectDataError(loadCsv(at('csvset', 'junk.csv')), at('csvset', 'junk.csv'), 'path,label');
  });
});

describe('loadHeadct and loadElpv (their own label formats)', () => {
  it('maps head CT ids to zero-padded files and warns about a missing one', async () => {
    const ds = await loadHeadct(at('headct'));
    expect(ds.name).toBe('headct');
    expect(ds.anomalyClasses).toEqual(['hemorrhage']);
    expect(ds.items.map((i) => [i.path, i.label])).toEqual([
      [at('headct', 'head_ct', '000.png'), 1],
      [at('headct', 'head_ct', '001.png'), 1],
      [at('headct', 'head_ct', '002.png'), 0],
      [at('headct', 'head_ct', '003.png'), 0],
    ]);
    expect(ds.warnings).toEqual([expect.stringContaining('004.png')]);
  });

  it('keeps ELPV probabilities 0 and 1 only, cell type as the class', async () => {
    const ds = await loadElpv(at('elpv'));
    expect(ds.items.map((i) => [i.path.slice(-12), i.label, i.cls])).toEqual([
      ['cell0001.png', 1, 'mono'],
      ['cell0002.png', 0, 'good'],
      ['cell0004.png', 1, 'poly'],
      ['cell0005.png', 0, 'good'],
    ]);
    expect(ds.anomalyClasses).toEqual(['mono', 'poly']);
    expect(ds.warnings).toEqual([expect.stringContaining('cell0006.png')]);
  });

  it('reads KolektorSDD: good/defect, one class crack, the masks of the defects', async () => {
    const ds = await loadKolektorSdd(at('sdd'));
    expect(ds.name).toBe('kolektorsdd');
    expect(ds.items.map((i) => [i.path.slice(-15), i.label, i.cls, i.mask?.slice(-15)])).toEqual([
      ['kos01_Part0.jpg', 0, 'good', undefined],
      ['kos01_Part1.jpg', 1, 'crack', 'kos01_Part1.png'],
      ['kos02_Part0.jpg', 1, 'crack', undefined],
    ]);
    expect(ds.anomalyClasses).toEqual(['crack']);
    expect(ds.warnings).toEqual([
      expect.stringContaining('"images/kos01_Part0.jpg, perhaps"'),
      expect.stringContaining('kos03_Part0.jpg'),
      expect.stringMatching(/kos02_Part0.jpg: no mask/),
    ]);
  });

  it('refuses a KolektorSDD labels.csv of another header', async () => {
    text(at('sddbad', 'labels.csv'), 'file;class\nimages/a.jpg;good\n');
    await expectDataError(loadKolektorSdd(at('sddbad')), 'expected the header "path, label"');
    await expectDataError(loadKolektorSdd(at('empty')), at('empty', 'labels.csv'), 'KolektorSDD');
  });

  it('refuses a folder without labels.csv, naming it', async () => {
    await expectDataError(loadHeadct(at('empty')), at('empty', 'labels.csv'), 'head CT');
    await expectDataError(loadElpv(at('empty')), at('empty', 'labels.csv'), 'ELPV');
  });
});

describe('resolveDataset', () => {
  const saved = process.env.SWAN_DATA_ROOT;
  afterEach(() => {
    if (saved === undefined) delete process.env.SWAN_DATA_ROOT;
    else process.env.SWAN_DATA_ROOT = saved;
  });

  it('reads every accepted form', async () => {
    expect((await resolveDataset('headct', { dataRoot: root })).name).toBe('headct');
    expect((await resolveDataset('elpv', { dataRoot: root })).name).toBe('elpv');
    const named = at('named');
    const bottle = await resolveDataset('bottle', { dataRoot: named });
    expect(bottle.name).toBe('bottle');
    expect(bottle.fixedSplit?.trainNormals).toHaveLength(2);
    expect(bottle.anomalyClasses).toEqual(['broken_large']);
    expect((await resolveDataset('kolektorsdd', { dataRoot: named })).name).toBe('kolektorsdd');
    expect((await resolveDataset('sdd', { dataRoot: named })).items).toHaveLength(2);
    expect((await resolveDataset(`mvtec:${at('bottle')}`, { dataRoot: '/x' })).name).toBe('mvtec:bottle');
    expect(
      (await resolveDataset(`folders:${at('parts')}`, { dataRoot: '/x', normal: 'ok' })).items,
    ).toHaveLength(5);
    expect(
      (await resolveDataset(`csv:${at('csvset', 'labels.csv')}`, { dataRoot: '/x' })).items,
    ).toHaveLength(5);
  });

  it('refuses an unknown spec listing the accepted forms, and folders without a normal name', async () => {
    await expectDataError(
      resolveDataset('brainmri', { dataRoot: root }),
      '"brainmri"',
      'headct',
      'elpv',
      'kolektorsdd',
      'bottle',
      'mvtec:DIR',
      'folders:DIR',
      'csv:FILE',
    );
    await expectDataError(resolveDataset('mvtec:', { dataRoot: root }), 'mvtec:DIR');
    await expectDataError(resolveDataset(`folders:${at('parts')}`, { dataRoot: root }), 'normal class');
  });

  it('finds the data root from the environment or beside the repository', () => {
    process.env.SWAN_DATA_ROOT = at('elpv');
    expect(defaultDataRoot()).toBe(at('elpv'));
    delete process.env.SWAN_DATA_ROOT;
    const repo = resolve(__dirname, '..', '..', '..');
    expect(defaultDataRoot()).toBe(resolve(repo, '..', 'shared', 'datasets'));
  });
});

// The real data sets of ../shared/datasets, when present: the counts their README states.
const sharedRoot = defaultDataRoot();
describe.skipIf(
  !existsSync(join(sharedRoot, 'kolektorsdd')) || !existsSync(join(sharedRoot, 'mvtec_bottle')),
)('the shipped KolektorSDD and MVTec bottle', () => {
  it('hold the README counts, with a mask for every defect', async () => {
    const sdd = await resolveDataset('sdd', { dataRoot: sharedRoot });
    expect(byClass(sdd)).toEqual({ good: 348, crack: 52 });
    expect(sdd.items.filter((i) => i.label === 1).every((i) => i.mask && existsSync(i.mask))).toBe(true);
    expect(sdd.warnings).toEqual([]);
    const bottle = await resolveDataset('bottle', { dataRoot: sharedRoot });
    expect(byClass(bottle)).toEqual({ good: 229, broken_large: 20, broken_small: 22, contamination: 21 });
    expect(bottle.fixedSplit?.trainNormals).toHaveLength(209);
    expect(bottle.items.filter((i) => i.label === 1).every((i) => i.mask && existsSync(i.mask))).toBe(true);
  });
});
