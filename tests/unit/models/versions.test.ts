import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yauzl from 'yauzl';
import yazl from 'yazl';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ApiService } from '../../../src-main/api/service';
import { MOBILENET_ID } from '../../../src-main/engine/backbone';
import type { DraState } from '../../../src-main/engine/heads/state';
import { loadModel, saveModel } from '../../../src-main/engine/model-file';
import { resolveSettings } from '../../../src-main/engine/settings';
import { trainFast } from '../../../src-main/engine/train';
import { normalFeatures, withDefect } from '../../../src-main/engine/train/synthetic';
import { Rng } from '../../../src-main/engine/util/rng';
import {
  exportModelArchive,
  importModelArchive,
  safeEntryPath,
  type ModelInfoFile,
} from '../../../src-main/models/archive';
import { APP_BACKBONE_ID } from '../../../src-main/models/versions';
import { ProjectStore } from '../../../src-main/project/store';
import { tempDir } from '../app/helpers';

let state: DraState;
const backbone = { id: MOBILENET_ID, inputSize: 224, featureLayer: 'conv_pw_13_relu', levels: 2 };

beforeAll(async () => {
  await tf.setBackend('cpu');
  const rng = new Rng(7);
  // The shapes of the app's backbone (conv_pw_13_relu at 224: 7x7 and 4x4, 768 channels): import checks them.
  const spec = { side: 7, channels: 768 };
  const normals = Array.from({ length: 6 }, () => normalFeatures(rng, spec));
  state = await trainFast(
    {
      normals,
      anomalies: [withDefect(rng, normals[0], { from: 0, to: 2 })],
      pseudo: normals.map((n) => [withDefect(rng, n, { from: 2, to: 4 })]),
    },
    resolveSettings({
      seed: 1,
      steps: 2,
      batchNormals: 4,
      batchAnomalies: 1,
      residualReduce: 3,
      residualWidth: 3,
      normalityWidth: 4,
      knnHead: false,
    }),
  );
});

function zipEntries(file: string): Promise<string[]> {
  return new Promise((res, rej) =>
    yauzl.open(file, { lazyEntries: false }, (err, zf) => {
      if (err || !zf) return rej(err);
      const names: string[] = [];
      zf.on('entry', (e: yauzl.Entry) => names.push(e.fileName));
      zf.on('end', () => res(names.sort()));
      zf.on('error', rej);
    }),
  );
}

/** A zip whose entry names are rewritten after writing (yazl itself refuses unsafe names). */
async function craftZip(
  file: string,
  entries: { name: string; data: Buffer; rename?: string }[],
): Promise<void> {
  const zip = new yazl.ZipFile();
  for (const e of entries) zip.addBuffer(e.data, e.name);
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream) chunks.push(c as Buffer);
  let buf = Buffer.concat(chunks);
  for (const e of entries) {
    if (!e.rename) continue;
    expect(e.rename.length).toBe(e.name.length);
    // The name is stored twice (local header, central directory); same length keeps offsets valid.
    buf = Buffer.from(buf.toString('latin1').split(e.name).join(e.rename), 'latin1');
  }
  writeFileSync(file, buf);
}

const listModelsDir = (project: string) => readdirSync(join(project, 'models')).sort();

/** The import is refused with `message`, and nothing is written: no folder (temporary or not), no row. */
async function expectImportRefused(api: ApiService, project: string, file: string, message: RegExp) {
  const r = await api.call('models.import', { file, activate: true });
  expect(r.ok, file).toBe(false);
  if (!r.ok) {
    expect(r.error.code).toBe('invalid_input');
    expect(r.error.message).toMatch(message);
    expect(r.error.message).toMatch(/nothing was imported/i);
  }
  expect(listModelsDir(project)).toEqual([]);
  expect((await api.invoke('models.list', {})).models).toEqual([]);
}

describe('model versions: list, activate, delete, export and import .swanmodel', () => {
  let tmp: ReturnType<typeof tempDir>;
  let api: ApiService;
  let projectA: string;
  let projectB: string;

  beforeEach(async () => {
    tmp = tempDir('swan-models-');
    api = new ApiService({ projectsRoot: join(tmp.dir, 'projects') });
    projectA = join(tmp.dir, 'A');
    projectB = join(tmp.dir, 'B');
    // Project A: two real model versions, v2 active, v1 with scores.
    const a = ProjectStore.create(projectA, 'Line A');
    const img = a.insertImage({ path: join(tmp.dir, 'x.png'), sha256: 's', width: 8, height: 8, batch: 'b' });
    for (const run of [1, 2]) {
      await saveModel(join(a.modelsDir, `run-${run}`), {
        state,
        backbone,
        trainingImageIds: ['1', '2'],
        metrics: { aucRoc: run === 1 ? 0.81 : 0.82 },
      });
      const m = a.addModel({
        dir: `models/run-${run}`,
        settings: { seed: 1, backbone: MOBILENET_ID, inputSize: 224 },
        labelGood: 6,
        labelDefect: run,
        labelIds: [img],
        metrics: { aucRoc: run === 1 ? 0.81 : 0.82 },
        warnings: [],
        runId: null,
      });
      a.saveScores(m.id, [{ imageId: img, total: run, perHead: { seen: run }, heatmap: null }]);
      a.setThreshold(0.5, m.id);
    }
    a.close();
    ProjectStore.create(projectB, 'Line B').close();
  });
  afterEach(async () => {
    await api.close();
    tmp.cleanup();
  });

  it('entry names that climb out or are absolute are refused before anything is written', () => {
    const root = join(tmp.dir, 'dest');
    expect(safeEntryPath(root, 'manifest.json')).toBe(join(root, 'manifest.json'));
    expect(safeEntryPath(root, 'sub/weights.bin')).toBe(join(root, 'sub', 'weights.bin'));
    for (const bad of [
      '../x',
      'a/../../x',
      '/etc/passwd',
      'C:\\Windows\\x',
      'C:x',
      '..\\x',
      '\\\\server\\share',
      'a\0b',
      '',
    ]) {
      expect(() => safeEntryPath(root, bad), bad).toThrow(/outside the model folder/);
    }
  });

  it('the app backbone id is the engine one', () => {
    expect(APP_BACKBONE_ID).toBe(MOBILENET_ID);
  });

  it('lists, activates an older version, refuses deleting the active one, deletes another', async () => {
    await api.invoke('project.open', { path: projectA });
    const { models } = await api.invoke('models.list', {});
    expect(models.map((m) => [m.version, m.active, m.labelCounts.defect, m.metrics?.aucRoc])).toEqual([
      [2, true, 2, 0.82],
      [1, false, 1, 0.81],
    ]);
    expect(models[0].createdAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    const [v2, v1] = models;
    const del = await api.call('models.delete', { id: v2.id });
    expect(del).toMatchObject({
      ok: false,
      error: { code: 'conflict', message: expect.stringMatching(/version 2 is the active model/) },
    });
    expect((await api.invoke('models.activate', { id: v1.id })).active).toBe(true);
    expect(await api.call('models.activate', { id: 42 })).toMatchObject({
      ok: false,
      error: { code: 'not_found' },
    });
    expect(await api.invoke('models.delete', { id: v2.id })).toEqual({ deleted: true });
    expect((await api.invoke('models.list', {})).models.map((m) => m.version)).toEqual([1]);
    expect(existsSync(join(projectA, 'models', 'run-2'))).toBe(false);
    expect(existsSync(join(projectA, 'models', 'run-1', 'manifest.json'))).toBe(true);
    expect(await api.call('models.delete', { id: v2.id })).toMatchObject({
      ok: false,
      error: { code: 'not_found' },
    });
  });

  it('exports one .swanmodel and imports it into another project', async () => {
    await api.invoke('project.open', { path: projectA });
    const v1 = (await api.invoke('models.list', {})).models.find((m) => m.version === 1)!;
    const out = await api.invoke('models.export', { id: v1.id, outDir: join(tmp.dir, 'exports') });
    expect(out.file).toBe(join(tmp.dir, 'exports', 'Line_A-v1.swanmodel'));
    expect(out.bytes).toBeGreaterThan(1000);
    expect(await zipEntries(out.file)).toEqual([
      'manifest.json',
      'reference.bin',
      'state.json',
      'swanmodel.json',
      'weights.bin',
    ]);
    const named = await api.invoke('models.export', { id: v1.id, file: join(tmp.dir, 'exports', 'mine') });
    expect(named.file).toBe(join(tmp.dir, 'exports', 'mine.swanmodel'));
    // No folder given: the project's own exports/ folder.
    const plain = await api.invoke('models.export', { id: v1.id });
    expect(plain.file).toBe(join(projectA, 'exports', 'Line_A-v1.swanmodel'));

    await api.invoke('project.open', { path: projectB });
    const imported = await api.invoke('models.import', { file: out.file });
    expect(imported).toMatchObject({
      version: 1,
      active: false,
      labelCounts: { good: 6, defect: 1 },
      metrics: { aucRoc: 0.81 },
    });
    expect(imported.warnings.at(-1)).toMatch(
      /imported from Line_A-v1\.swanmodel \(version 1 of project "Line A"\)/,
    );
    const dirs = listModelsDir(projectB);
    expect(dirs).toHaveLength(1);
    expect(dirs[0]).toMatch(/^imported-/);
    const loaded = await loadModel(join(projectB, 'models', dirs[0]), { backboneId: MOBILENET_ID });
    expect(loaded.state.weights).toBeDefined();
    const again = await api.invoke('models.import', { file: named.file, activate: true });
    expect(again).toMatchObject({ version: 2, active: true });
    expect((await api.invoke('models.active', {})).model?.id).toBe(again.id);
  });

  it('refuses a truncated file, another format version, another backbone and zip-slip entries; writes nothing', async () => {
    await api.invoke('project.open', { path: projectA });
    const v1 = (await api.invoke('models.list', {})).models.find((m) => m.version === 1)!;
    const good = (await api.invoke('models.export', { id: v1.id, outDir: join(tmp.dir, 'x') })).file;
    const info: ModelInfoFile = {
      app: 'swan-inspector',
      version: 1,
      createdAt: '',
      exportedAt: '',
      project: 'p',
      labelCounts: { good: 1, defect: 1 },
      settings: {},
      metrics: null,
      warnings: [],
    };
    // Another format version and another backbone: the manifest edited, then zipped as the app does.
    const variant = async (name: string, edit: (m: Record<string, unknown>) => void) => {
      const dir = join(tmp.dir, name);
      cpSync(join(projectA, 'models', 'run-1'), dir, { recursive: true });
      const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
      edit(m);
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
      const file = join(tmp.dir, `${name}.swanmodel`);
      await exportModelArchive(dir, file, info);
      return file;
    };
    const v2format = await variant('v99', (m) => (m.formatVersion = 99));
    const resnet = await variant('resnet', (m) => ((m.backbone as Record<string, unknown>).id = 'resnet18'));
    const truncated = join(tmp.dir, 'truncated.swanmodel');
    const bytes = readFileSync(good);
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const manifest = readFileSync(join(projectA, 'models', 'run-1', 'manifest.json'));
    const slip = join(tmp.dir, 'slip.swanmodel');
    await craftZip(slip, [
      { name: 'manifest.json', data: manifest },
      { name: 'XX/XX/evil-slip.txt', rename: '../../evil-slip.txt', data: Buffer.from('owned') },
    ]);
    const absName = `/tmp/evil-abs-${process.pid}.txt`;
    const abs = join(tmp.dir, 'abs.swanmodel');
    await craftZip(abs, [{ name: `X${absName.slice(1)}`, rename: absName, data: Buffer.from('owned') }]);
    const notZip = join(tmp.dir, 'notzip.swanmodel');
    writeFileSync(notZip, 'hello, this is not a zip file at all');

    await api.invoke('project.open', { path: projectB });
    const cases: [string, RegExp][] = [
      [truncated, /damaged or truncated/],
      [notZip, /damaged or truncated|could not be read/],
      [v2format, /format version 99 is not supported.*different version of Swan Inspector/],
      [resnet, /trained on backbone 'resnet18', not 'mobilenet_v1_0\.75'.*different pretrained network/],
      [slip, /outside the model folder/],
      [abs, /outside the model folder/],
    ];
    for (const [file, msg] of cases) await expectImportRefused(api, projectB, file, msg);
    expect(existsSync(join(tmp.dir, 'evil-slip.txt'))).toBe(false);
    expect(existsSync(join(projectB, 'evil-slip.txt'))).toBe(false);
    expect(existsSync(absName)).toBe(false);
    expect(await api.call('models.import', { file: join(tmp.dir, 'absent.swanmodel') })).toMatchObject({
      ok: false,
      error: { code: 'not_found' },
    });
  });
});

describe('model import checks the file whole (issue 13, finding 1)', () => {
  let tmp: ReturnType<typeof tempDir>;
  let api: ApiService;
  let source: string;
  let project: string;
  const info: ModelInfoFile = {
    app: 'swan-inspector',
    version: 1,
    createdAt: '',
    exportedAt: '',
    project: 'p',
    labelCounts: { good: 6, defect: 1 },
    settings: {},
    metrics: null,
    warnings: [],
  };

  beforeEach(async () => {
    tmp = tempDir('swan-import-');
    api = new ApiService({ projectsRoot: join(tmp.dir, 'projects') });
    source = join(tmp.dir, 'model');
    await saveModel(source, { state, backbone, trainingImageIds: ['1', '2'], metrics: { aucRoc: 0.8 } });
    project = join(tmp.dir, 'P');
    ProjectStore.create(project, 'P').close();
    await api.invoke('project.open', { path: project });
  });
  afterEach(async () => {
    await api.close();
    tmp.cleanup();
  });

  /** A copy of the good model with manifest/state edited (checksums kept right), zipped as the app does. */
  async function variant(
    name: string,
    edit: { manifest?: (m: Record<string, any>) => void; state?: (s: Record<string, any>) => void },
    extra: Record<string, Buffer> = {},
  ): Promise<string> {
    const dir = join(tmp.dir, name);
    cpSync(source, dir, { recursive: true });
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Record<string, any>;
    if (edit.state) {
      const st = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as Record<string, any>;
      edit.state(st);
      const bytes = Buffer.from(JSON.stringify(st));
      writeFileSync(join(dir, 'state.json'), bytes);
      m.files['state.json'] = {
        sha256: createHash('sha256').update(bytes).digest('hex'),
        bytes: bytes.length,
      };
    }
    edit.manifest?.(m);
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
    for (const [f, data] of Object.entries(extra)) writeFileSync(join(dir, f), data);
    const file = join(tmp.dir, `${name}.swanmodel`);
    await exportModelArchive(dir, file, info);
    return file;
  }

  const expectRefused = (file: string, message: RegExp) => expectImportRefused(api, project, file, message);

  it('refuses a feature layer the backbone lacks, naming the field (it used to import and activate)', async () => {
    const file = await variant('layer', { manifest: (m) => (m.backbone.featureLayer = 'x') });
    await expectRefused(file, /backbone\.featureLayer: 'x' is not a layer of backbone 'mobilenet_v1_0\.75'/);
  });

  it('refuses a manifest without trainingImageIds, naming the field, and leaves no folder behind', async () => {
    const file = await variant('ids', { manifest: (m) => delete m.trainingImageIds });
    await expectRefused(file, /manifest\.json: trainingImageIds: /);
  });

  it('refuses shapes that do not fit the backbone or each other', async () => {
    const wrongChannels = await variant('channels', {
      manifest: (m) => (m.reference.shapes[0].c = 512),
    });
    await expectRefused(wrongChannels, /reference\.shapes\.0: .*7x7x768/);
    const shortWeights = await variant('weights', {
      state: (st) => (st.weights.patch.w.$f32.length -= 1),
    });
    await expectRefused(shortWeights, /weights\.patch\.w: holds \d+ numbers, expected \d+/);
    const wrongType = await variant('type', { state: (st) => (st.weights.channels = 'many') });
    await expectRefused(wrongType, /state\.json: weights\.channels: /);
    const outside = await variant('outside', {
      state: (st) => (st.weights.patch.w.$f32.offset = 1e9),
    });
    await expectRefused(outside, /points outside weights\.bin/);
  });

  it('keeps only the files the manifest lists', async () => {
    const file = await variant(
      'extra',
      {},
      { 'notes.txt': Buffer.from('not part of a model'), 'big.bin': Buffer.alloc(4096) },
    );
    const m = await api.invoke('models.import', { file });
    expect(m.version).toBe(1);
    const [dir] = listModelsDir(project);
    expect(readdirSync(join(project, 'models', dir)).sort()).toEqual([
      'manifest.json',
      'reference.bin',
      'state.json',
      'swanmodel.json',
      'weights.bin',
    ]);
  });

  it('undoes the folder move when recording the row fails', async () => {
    const file = await variant('ok', {});
    const modelsDir = join(tmp.dir, 'models-undo');
    await expect(
      importModelArchive(file, modelsDir, MOBILENET_ID, (_imported, moveIntoPlace) => {
        moveIntoPlace();
        throw new Error('the database refused the row');
      }),
    ).rejects.toThrow(/refused the row/);
    expect(readdirSync(modelsDir)).toEqual([]);
  });
});
