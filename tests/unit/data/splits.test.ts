import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadElpv, loadHeadct } from '../../../src-main/data/adapters';
import { DataError } from '../../../src-main/data/data-error';
import { defaultDataRoot } from '../../../src-main/data/datasets';
import { hardClasses, makeSplit } from '../../../src-main/data/splits';
import type { Dataset, DatasetItem, ProtocolSplit } from '../../../src-main/data/types';

const paths = (items: DatasetItem[]): string[] => items.map((i) => i.path);

/** Invariants every protocol split must hold. */
function checkDisjoint(ds: Dataset, s: ProtocolSplit): void {
  const train = new Set([...paths(s.trainNormals), ...paths(s.trainAnomalies)]);
  expect(s.test.some((i) => train.has(i.path))).toBe(false);
  expect(new Set(paths(s.test)).size).toBe(s.test.length);
  expect(s.trainNormals.every((i) => i.label === 0)).toBe(true);
  expect(s.trainAnomalies.every((i) => i.label === 1)).toBe(true);
  // Every normal is used exactly once.
  expect(s.trainNormals.length + s.test.filter((i) => i.label === 0).length).toBe(
    ds.items.filter((i) => i.label === 0).length,
  );
}

function synthetic(classes: Record<string, number>, normals: number, fixed = false): Dataset {
  const items: DatasetItem[] = [];
  for (let k = 0; k < normals; k++) items.push({ path: `/n/${k}.png`, label: 0, cls: 'good' });
  for (const [cls, n] of Object.entries(classes))
    for (let k = 0; k < n; k++) items.push({ path: `/a/${cls}/${k}.png`, label: 1, cls });
  const ds: Dataset = {
    name: 'synthetic',
    root: '/',
    items,
    anomalyClasses: Object.keys(classes).sort(),
    warnings: [],
  };
  if (fixed) {
    const n = items.filter((i) => i.label === 0);
    ds.fixedSplit = { trainNormals: n.slice(0, 7), testNormals: n.slice(7) };
  }
  return ds;
}

describe('makeSplit on a synthetic data set', () => {
  const ds = synthetic({ crack: 15, hole: 12, stain: 3 }, 40);

  it('is deterministic for a seed and differs between seeds', () => {
    const a = makeSplit(ds, { setting: 'general', shots: 10, seed: 1 });
    const b = makeSplit(ds, { setting: 'general', shots: 10, seed: 1 });
    const c = makeSplit(ds, { setting: 'general', shots: 10, seed: 2 });
    expect(paths(b.trainAnomalies)).toEqual(paths(a.trainAnomalies));
    expect(paths(b.trainNormals)).toEqual(paths(a.trainNormals));
    expect(paths(b.test)).toEqual(paths(a.test));
    expect(paths(c.trainAnomalies)).not.toEqual(paths(a.trainAnomalies));
    expect(paths(c.trainNormals).sort()).not.toEqual(paths(a.trainNormals).sort());
  });

  it('general: 3:1 normals, shots drawn from any class and removed from the test', () => {
    const s = makeSplit(ds, { setting: 'general', shots: 10, seed: 5 });
    expect(s.trainNormals).toHaveLength(30);
    expect(s.trainAnomalies).toHaveLength(10);
    expect(s.test.filter((i) => i.label === 0)).toHaveLength(10);
    expect(s.test.filter((i) => i.label === 1)).toHaveLength(30 - 10);
    expect(s.knownClass).toBeUndefined();
    checkDisjoint(ds, s);
  });

  it('the 1-shot image is among the 10-shot images and the test sets are equal', () => {
    for (const seed of [0, 1, 2]) {
      for (const setting of ['general', 'hard'] as const) {
        const opts = { setting, seed, knownClass: setting === 'hard' ? 'crack' : undefined };
        const ten = makeSplit(ds, { ...opts, shots: 10 });
        const one = makeSplit(ds, { ...opts, shots: 1 });
        expect(one.trainAnomalies).toHaveLength(1);
        expect(one.trainAnomalies[0]).toBe(ten.trainAnomalies[0]);
        expect(paths(one.test)).toEqual(paths(ten.test));
        expect(paths(one.trainNormals)).toEqual(paths(ten.trainNormals));
        // General 1-shot: the other 9 drawn images are in neither train nor test.
        expect(one.test.filter((i) => i.label === 1)).toHaveLength(
          ten.test.filter((i) => i.label === 1).length,
        );
      }
    }
  });

  it('hard: shots from the known class only, and none of that class in the test', () => {
    const s = makeSplit(ds, { setting: 'hard', shots: 10, seed: 3, knownClass: 'crack' });
    expect(s.knownClass).toBe('crack');
    expect(s.trainAnomalies.every((i) => i.cls === 'crack')).toBe(true);
    expect(s.test.some((i) => i.cls === 'crack')).toBe(false);
    expect(s.test.filter((i) => i.label === 1)).toHaveLength(12 + 3);
    checkDisjoint(ds, s);
    expect(hardClasses(ds)).toEqual(['crack', 'hole', 'stain']);
  });

  it('keeps a fixed (MVTec) normal split', () => {
    const fixed = synthetic({ crack: 14 }, 10, true);
    const s = makeSplit(fixed, { setting: 'general', shots: 1, seed: 9 });
    expect(s.trainNormals).toEqual(fixed.fixedSplit!.trainNormals);
    expect(s.test.filter((i) => i.label === 0)).toEqual(fixed.fixedSplit!.testNormals);
  });

  it('refuses impossible requests with a one-line DataError', () => {
    const cases: [Parameters<typeof makeSplit>[1], RegExp][] = [
      [
        { setting: 'hard', shots: 5, seed: 0, knownClass: 'stain' },
        /5 shots asked but only 3 anomalies of class "stain"/,
      ],
      [{ setting: 'general', shots: 31, seed: 0 }, /31 shots asked but only 30 anomalies available/],
      [{ setting: 'hard', shots: 1, seed: 0 }, /needs a known class/],
      [{ setting: 'hard', shots: 1, seed: 0, knownClass: 'dent' }, /no anomaly class "dent"/],
      [{ setting: 'general', shots: 0, seed: 0 }, /shots must be/],
    ];
    for (const [opts, msg] of cases) {
      let err: unknown;
      try {
        makeSplit(ds, opts);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DataError);
      expect((err as Error).message).toMatch(msg);
      expect((err as Error).message).not.toContain('\n');
    }
    expect(() =>
      makeSplit(synthetic({ only: 20 }, 8), { setting: 'hard', shots: 1, seed: 0, knownClass: 'only' }),
    ).toThrow(/second anomaly class/);
    expect(() => makeSplit(synthetic({ few: 10 }, 8), { setting: 'general', shots: 1, seed: 0 })).toThrow(
      /none is left to test/,
    );
  });
});

const dataRoot = defaultDataRoot();
const haveData =
  existsSync(join(dataRoot, 'headct', 'labels.csv')) && existsSync(join(dataRoot, 'elpv', 'labels.csv'));

/** Counts straight from the label files, independently of the adapters. */
function headctCounts(): { normal: number; anomaly: number } {
  const rows = readFileSync(join(dataRoot, 'headct', 'labels.csv'), 'utf8')
    .trim()
    .split(/\r?\n/)
    .slice(1);
  const flags = rows.map((r) => r.split(',')[1].trim());
  return { normal: flags.filter((f) => f === '0').length, anomaly: flags.filter((f) => f === '1').length };
}

function elpvCounts(): { normal: number; anomaly: Record<string, number> } {
  const rows = readFileSync(join(dataRoot, 'elpv', 'labels.csv'), 'utf8')
    .trim()
    .split(/\r?\n/)
    .map((l) => l.trim().split(/\s+/));
  const anomaly: Record<string, number> = {};
  for (const [, p, t] of rows) if (Number(p) === 1) anomaly[t] = (anomaly[t] ?? 0) + 1;
  return { normal: rows.filter(([, p]) => Number(p) === 0).length, anomaly };
}

describe.skipIf(!haveData)(`protocol splits of the real data sets in ${dataRoot}`, () => {
  let headct: Dataset;
  let elpv: Dataset;
  beforeAll(async () => {
    [headct, elpv] = await Promise.all([
      loadHeadct(join(dataRoot, 'headct')),
      loadElpv(join(dataRoot, 'elpv')),
    ]);
  });

  it('head CT: 3:1 normals, 10 anomalies out of the test', () => {
    const c = headctCounts();
    expect(c).toEqual({ normal: 100, anomaly: 100 }); // as the data set's README says
    expect(headct.warnings).toEqual([]);
    for (const shots of [10, 1]) {
      const s = makeSplit(headct, { setting: 'general', shots, seed: 0 });
      expect(s.trainNormals).toHaveLength(c.normal * 0.75);
      expect(s.trainAnomalies).toHaveLength(shots);
      expect(s.test.filter((i) => i.label === 0)).toHaveLength(c.normal / 4);
      expect(s.test.filter((i) => i.label === 1)).toHaveLength(c.anomaly - 10);
      checkDisjoint(headct, s);
    }
    expect(() => makeSplit(headct, { setting: 'hard', shots: 1, seed: 0, knownClass: 'hemorrhage' })).toThrow(
      DataError,
    );
  });

  it('ELPV: probabilities 0 and 1 only; general and hard (mono, poly) sizes', () => {
    const c = elpvCounts();
    expect(c.normal).toBe(1508);
    expect(c.anomaly).toEqual({ mono: 313, poly: 402 });
    expect(elpv.items.filter((i) => i.label === 0)).toHaveLength(c.normal);
    expect(hardClasses(elpv)).toEqual(['mono', 'poly']);
    const nTestNormals = Math.round(c.normal / 4);

    const g = makeSplit(elpv, { setting: 'general', shots: 10, seed: 1 });
    expect(g.trainNormals).toHaveLength(c.normal - nTestNormals);
    expect(g.test).toHaveLength(nTestNormals + c.anomaly.mono + c.anomaly.poly - 10);
    checkDisjoint(elpv, g);

    for (const [known, unseen] of [
      ['mono', 'poly'],
      ['poly', 'mono'],
    ]) {
      const ten = makeSplit(elpv, { setting: 'hard', shots: 10, seed: 2, knownClass: known });
      const one = makeSplit(elpv, { setting: 'hard', shots: 1, seed: 2, knownClass: known });
      expect(ten.trainAnomalies.every((i) => i.cls === known)).toBe(true);
      expect(ten.test.some((i) => i.cls === known)).toBe(false);
      expect(ten.test.filter((i) => i.label === 1)).toHaveLength(c.anomaly[unseen]);
      expect(ten.trainAnomalies).toContain(one.trainAnomalies[0]);
      expect(paths(one.test)).toEqual(paths(ten.test));
      checkDisjoint(elpv, ten);
    }
  });

  it('the same seed gives the same split across separate loads', async () => {
    const again = await loadElpv(join(dataRoot, 'elpv'));
    const a = makeSplit(elpv, { setting: 'general', shots: 10, seed: 7 });
    const b = makeSplit(again, { setting: 'general', shots: 10, seed: 7 });
    expect(paths(b.trainAnomalies)).toEqual(paths(a.trainAnomalies));
    expect(paths(b.trainNormals)).toEqual(paths(a.trainNormals));
    expect(paths(b.test)).toEqual(paths(a.test));
  });
});
