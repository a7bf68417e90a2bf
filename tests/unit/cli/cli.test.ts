import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtemp, mkdir, readFile, rm } from 'node:fs/promises';
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
    };
  };

  it('DRA reports every head; the DevNet baseline is the seen head alone, the kNN baseline has none', async () => {
    const dra = await bench([]);
    expect(Object.keys(dra.per_head).sort()).toEqual([
      'global',
      'knn',
      'normality',
      'pseudo',
      'residual',
      'seen',
    ]);
    const devnet = await bench(['--baseline', 'devnet']);
    expect(Object.keys(devnet.per_head)).toEqual(['seen']);
    const knn = await bench(['--baseline', 'knn']);
    expect(Object.keys(knn.per_head)).toEqual([]);
    for (const r of [dra, devnet, knn]) expect(r.auc_roc.mean).toBeGreaterThanOrEqual(0);
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
