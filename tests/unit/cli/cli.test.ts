import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { copyFile, mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { main } from '../../../src-main/cli/main';

/** Runs the CLI in-process and captures what it writes. */
async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const so = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out += String(s);
    return true;
  });
  const se = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
    err += String(s);
    return true;
  });
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
    out += a.join(' ') + '\n';
  });
  try {
    const code = await main(args);
    return { code, out, err };
  } finally {
    so.mockRestore();
    se.mockRestore();
    log.mockRestore();
  }
}

let dir: string;

/** A tiny folder-per-class data set: textured good parts, defects with a bright spot. */
async function makeFolders(root: string): Promise<void> {
  const size = 64;
  for (const [cls, n] of [
    ['good', 10],
    ['spot', 12],
  ] as const) {
    await mkdir(join(root, cls), { recursive: true });
    for (let i = 0; i < n; i++) {
      const px = Buffer.alloc(size * size * 3);
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++) {
          const v = 100 + 40 * Math.sin((x + i) / 3) * Math.cos((y - i) / 4);
          const spot = cls === 'spot' && (x - 12 - i * 3) ** 2 + (y - 30) ** 2 < 60;
          px.fill(spot ? 255 : Math.round(v), (y * size + x) * 3, (y * size + x) * 3 + 3);
        }
      await sharp(px, { raw: { width: size, height: size, channels: 3 } })
        .png()
        .toFile(join(root, cls, `${cls}_${i}.png`));
    }
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'swan-cli-'));
  process.env.SWAN_CACHE_DIR = join(dir, 'cache');
  await makeFolders(join(dir, 'data'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('swan CLI: bad input is one line and exit code 2', () => {
  it('unknown data set', async () => {
    const r = await run(['bench', '--dataset', 'nosuchset']);
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/nosuchset/);
  });

  it('a missing data folder', async () => {
    const r = await run(['bench', '--dataset', 'headct', '--data-root', join(dir, 'nowhere')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/nowhere/);
  });

  it('an invalid number', async () => {
    const r = await run(['bench', '--dataset', 'headct', '--shots', 'ten']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--shots/);
  });

  it('more shots than anomalies', async () => {
    const r = await run([
      'train',
      '--data',
      `folders:${join(dir, 'data')}`,
      '--normal',
      'good',
      '--shots',
      '13',
      '--out',
      join(dir, 'm0'),
    ]);
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });

  it('an unknown setting override', async () => {
    const r = await run(['bench', '--dataset', 'headct', '--set', 'nonsense=1']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unknown setting "nonsense"/);
  });

  it('--dump-parts without --json', async () => {
    const r = await run(['bench', '--dataset', 'headct', '--dump-parts']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--dump-parts needs --json/);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });

  it('an unknown backbone', async () => {
    const r = await run(['train', '--data', 'headct', '--backbone', 'vgg', '--out', join(dir, 'x')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--backbone.*vgg.*mobilenet, resnet50/);
  });

  it('an unknown command', async () => {
    const r = await run(['frobnicate']);
    expect(r.code).toBe(2);
  });
});

describe('swan doctor', () => {
  it('prints the backend and why the others were not chosen, full mode, the GPU and the backbones', async () => {
    const { code, out } = await run(['doctor']);
    expect(code).toBe(0);
    expect(out).toMatch(/^backend: (wasm|cpu|tensorflow)/m);
    expect(out).toMatch(/^ {2}- tensorflow-gpu +@tensorflow\/tfjs-node-gpu.*: \S/m);
    expect(out).toMatch(/^ {2}\* /m);
    expect(out).toMatch(/^full mode: (available|refused)/m);
    expect(out).toMatch(/^GPU: \S/m);
    expect(out).toMatch(/^ {2}mobilenet_v1_0\.75 +\S+ \[.*\]: ok \(model\.json, \d+ weight tensors/m);
    expect(out).toMatch(/^onnxruntime-node: /m);
  });
});

describe('swan train --mode full on the wasm backend', () => {
  it('exits 2 with the message that says what to install', async () => {
    const { code, err } = await run([
      'train',
      '--data',
      `folders:${join(dir, 'data')}`,
      '--normal',
      'good',
      '--mode',
      'full',
      '--out',
      join(dir, 'full-model'),
    ]);
    expect(code).toBe(2);
    expect(err).toMatch(/^swan: Full mode .*needs a native TensorFlow backend.*runs on wasm/);
    expect(err).toContain('install @tensorflow/tfjs-node-gpu');
  });
});

describe('swan train and score on a folder data set (real backbone)', () => {
  it('trains, scores with one column per head, and the same seed gives the same scores', async () => {
    const data = `folders:${join(dir, 'data')}`;
    const common = ['--normal', 'good', '--shots', '1', '--seed', '3', '--set', 'steps=5'];
    const a = await run(['train', '--data', data, ...common, '--out', join(dir, 'ma')]);
    expect(a.code, a.err).toBe(0);
    expect(a.out).toMatch(/backend: /);
    const b = await run(['train', '--data', data, ...common, '--out', join(dir, 'mb')]);
    expect(b.code, b.err).toBe(0);

    const images = join(dir, 'data');
    const sa = await run(['score', '--model', join(dir, 'ma'), images, '--csv', join(dir, 'a.csv')]);
    expect(sa.code, sa.err).toBe(0);
    expect(sa.err).toMatch(/scored 22 images/);
    const sb = await run(['score', '--model', join(dir, 'mb'), images, '--csv', join(dir, 'b.csv')]);
    expect(sb.code, sb.err).toBe(0);

    const csvA = await readFile(join(dir, 'a.csv'), 'utf8');
    const csvB = await readFile(join(dir, 'b.csv'), 'utf8');
    const header = csvA.split('\n')[0];
    expect(header).toBe('path,score,seen,pseudo,residual,normality,knn,global,error');
    expect(csvA.trim().split('\n')).toHaveLength(23);
    expect(csvB).toBe(csvA);
  });

  it('--validate K prints the held-out AUC-ROC/AP per head and writes them into the model', async () => {
    const data = `folders:${join(dir, 'data')}`;
    const args = ['--normal', 'good', '--shots', '2', '--seed', '3', '--set', 'steps=5'];
    const r = await run(['train', '--data', data, ...args, '--validate', '2', '--out', join(dir, 'mv')]);
    expect(r.code, r.err).toBe(0);
    const m =
      /held-out \(2-fold cross-validation on (\d+) good \/ 2 defect images\): AUC-ROC ([\d.]+), AP ([\d.]+)/.exec(
        r.out,
      );
    expect(m, r.out).not.toBeNull();
    expect(r.out).toMatch(
      /held-out AUC-ROC per head: seen [\d.]+, pseudo [\d.]+, residual [\d.]+, normality [\d.]+, knn [\d.]+/,
    );
    expect(r.out).toMatch(/seconds: features [\d.]+, train [\d.]+, validate [\d.]+, save/);
    const manifest = JSON.parse(await readFile(join(dir, 'mv', 'manifest.json'), 'utf8')) as {
      metrics: Record<string, number>;
      validation: { method: string; outOfFold: Record<string, unknown> };
    };
    expect(manifest.metrics).toMatchObject({ folds: 2, n_good: Number(m![1]), n_defect: 2 });
    expect(manifest.metrics.auc_roc.toFixed(4)).toBe(m![2]);
    expect(manifest.metrics.ap.toFixed(4)).toBe(m![3]);
    expect(manifest.validation.method).toBe('k-fold cross-validation');
    expect(Object.keys(manifest.validation.outOfFold)).toHaveLength(Number(m![1]) + 2);
    // Off by default: no validation stage, no metrics.
    const plain = JSON.parse(await readFile(join(dir, 'ma', 'manifest.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(plain.metrics).toEqual({});
    expect(plain).not.toHaveProperty('validation');
    const bad = await run(['train', '--data', data, ...args, '--validate', '11', '--out', join(dir, 'mx')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--validate must be an integer from 0 to 10/);
  });

  it('--outliers DIR trains with outlier exposure and records it; a missing folder is one line, code 2', async () => {
    const data = `folders:${join(dir, 'data')}`;
    const args = ['--normal', 'good', '--shots', '1', '--seed', '3', '--set', 'steps=5'];
    // The "other data set": the defect images of another class folder stand in for one.
    const other = join(dir, 'data', 'spot');
    const r = await run(['train', '--data', data, ...args, '--outliers', other, '--out', join(dir, 'mo')]);
    expect(r.code, r.err).toBe(0);
    const manifest = JSON.parse(await readFile(join(dir, 'mo', 'manifest.json'), 'utf8')) as {
      settings: { pseudo: string; outlierDir: string };
    };
    expect(manifest.settings).toMatchObject({ pseudo: 'outlier', outlierDir: other });
    const bad = await run([
      'train',
      '--data',
      data,
      ...args,
      '--outliers',
      join(dir, 'nowhere'),
      '--out',
      join(dir, 'mx'),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.err.trim().split('\n')).toHaveLength(1);
    expect(bad.err).toMatch(/--outliers: .*nowhere is not a folder/);
  });
});

describe('swan bench on a folder data set (real backbone)', () => {
  const bench = async (extra: string[]) => {
    const json = join(dir, `bench-${extra.join('-') || 'dra'}.json`);
    const r = await run([
      'bench',
      '--dataset',
      `folders:${join(dir, 'data')}`,
      '--normal',
      'good',
      '--shots',
      '2',
      '--seeds',
      '1',
      '--set',
      'steps=5',
      '--json',
      json,
      ...extra,
    ]);
    expect(r.code, r.err).toBe(0);
    return JSON.parse(await readFile(json, 'utf8')) as {
      per_head: Record<string, unknown>;
      auc_roc: { mean: number };
      runs: { seed: number }[];
    };
  };

  it('swan reports every head, dra the four of the paper, devnet the seen head, knn and patchcore none', async () => {
    const swan = await bench([]);
    expect(Object.keys(swan.per_head).sort()).toEqual([
      'global',
      'knn',
      'normality',
      'pseudo',
      'residual',
      'seen',
    ]);
    const dra = await bench(['--method', 'dra']);
    expect(Object.keys(dra.per_head).sort()).toEqual(['normality', 'pseudo', 'residual', 'seen']);
    const devnet = await bench(['--method', 'devnet']);
    expect(Object.keys(devnet.per_head)).toEqual(['seen']);
    const knn = await bench(['--baseline', 'knn']);
    expect(Object.keys(knn.per_head)).toEqual([]);
    const patchcore = await bench(['--method', 'patchcore', '--seed-start', '7']);
    expect(Object.keys(patchcore.per_head)).toEqual([]);
    expect(patchcore.runs.map((r) => r.seed)).toEqual([7]);
    for (const r of [swan, dra, devnet, knn, patchcore]) expect(r.auc_roc.mean).toBeGreaterThanOrEqual(0);
    // The spots are bright and few: an unsupervised patch method finds them.
    expect(patchcore.auc_roc.mean).toBeGreaterThan(0.5);
  });
});

describe('swan bench-table (real backbone)', () => {
  it(
    'runs the methods over a named data set and writes the Markdown table and the JSON',
    { timeout: 300_000 },
    async () => {
      // A miniature KolektorSDD from the spot images: labels.csv, images/ and the spots' masks.
      const root = join(dir, 'named');
      const sdd = join(root, 'kolektorsdd');
      await mkdir(join(sdd, 'images'), { recursive: true });
      await mkdir(join(sdd, 'masks'), { recursive: true });
      const rows = ['path,label'];
      for (const [cls, n] of [
        ['good', 10],
        ['spot', 12],
      ] as const) {
        for (let i = 0; i < n; i++) {
          const name = `${cls}_${i}`;
          await copyFile(join(dir, 'data', cls, `${name}.png`), join(sdd, 'images', `${name}.png`));
          rows.push(`images/${name}.png,${cls === 'good' ? 'good' : 'defect'}`);
          const m = Buffer.alloc(64 * 64);
          for (let y = 0; y < 64; y++)
            for (let x = 0; x < 64; x++) if ((x - 12 - i * 3) ** 2 + (y - 30) ** 2 < 60) m[y * 64 + x] = 255;
          if (cls === 'spot')
            await sharp(m, { raw: { width: 64, height: 64, channels: 1 } })
              .png()
              .toFile(join(sdd, 'masks', `${name}.png`));
        }
      }
      await writeFile(join(sdd, 'labels.csv'), rows.join('\n'));
      const out = join(dir, 'tables');
      const r = await run([
        'bench-table',
        '--data-root',
        root,
        '--methods',
        'knn,patchcore',
        '--shots',
        '1',
        '--seeds',
        '1',
        '--seed-start',
        '100',
        '--name',
        'mini',
        '--out',
        out,
      ]);
      expect(r.code, r.err).toBe(0);
      const table = JSON.parse(await readFile(join(out, 'mini.json'), 'utf8')) as {
        seed_start: number;
        results: {
          dataset: string;
          method: string;
          setting: string;
          pixel_auc_roc?: { mean: number };
          runs: { seed: number }[];
        }[];
        methods: Record<string, unknown>;
      };
      expect(table.seed_start).toBe(100);
      expect(table.results.map((x) => `${x.dataset}/${x.setting}/${x.method}`)).toEqual([
        'kolektorsdd/general/knn',
        'kolektorsdd/general/patchcore',
      ]);
      expect(table.results.every((x) => x.runs.length === 1 && x.runs[0].seed === 100)).toBe(true);
      const pixel = Object.fromEntries(table.results.map((x) => [x.method, x.pixel_auc_roc?.mean]));
      expect(pixel.knn).toBeUndefined();
      expect(pixel.patchcore).toBeGreaterThan(0.5);
      expect(table.methods).toEqual({ knn: null, patchcore: null });
      const md = await readFile(join(out, 'mini.md'), 'utf8');
      expect(md).toContain('## Pixel AUROC');
      expect(md).toMatch(/\| kolektorsdd \| general \| 1 \| - \| [0-9.]+ ± [0-9.]+ \|/);
      expect(md).toMatch(
        /\| kolektorsdd \| general \| 1 \| [0-9.]+ ± [0-9.]+ \| [0-9.]+ ± [0-9.]+ \| 0\.859 \|/,
      );
    },
  );

  it('refuses an unknown method or data set with one line', async () => {
    const bad = await run(['bench-table', '--methods', 'dra,magic']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--methods: unknown "magic"/);
    const none = await run(['bench-table', '--datasets', 'brainmri']);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/--datasets: unknown "brainmri"/);
  });
});

describe('swan api: the CLI front door of the typed API', () => {
  it('runs an operation and prints its validated reply as JSON', async () => {
    const root = join(dir, 'projects');
    const r = await run([
      'api',
      'project.create',
      JSON.stringify({ name: 'Line 4' }),
      '--projects-root',
      root,
    ]);
    expect(r.code, r.err).toBe(0);
    const reply = JSON.parse(r.out) as { name: string; imageCount: number };
    expect(reply.name).toBe('Line 4');
    expect(reply.imageCount).toBe(0);
  });

  it('refuses an invalid payload with the validation message and exit code 2', async () => {
    const r = await run(['api', 'labels.set', JSON.stringify({ ids: 'all', label: 'maybe' })]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/labels\.set/);
  });

  it('refuses a payload that is not JSON', async () => {
    const r = await run(['api', 'project.create', '{name:']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/not valid JSON/);
  });
});
