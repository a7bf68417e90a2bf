import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, ModelFileError, saveModel } from '../../../src-main/engine/model-file';
import { scoreFeatures } from '../../../src-main/engine/infer';
import type { DraState } from '../../../src-main/engine/heads/state';
import { trainFast } from '../../../src-main/engine/train';
import { normalFeatures, withDefect } from '../../../src-main/engine/train/synthetic';
import { resolveSettings } from '../../../src-main/engine/settings';
import { Rng } from '../../../src-main/engine/util/rng';

const spec = { side: 4, channels: 6 };
const backbone = { id: 'mobilenet_v1_0.75', inputSize: 224, featureLayer: 'conv_pw_13_relu', levels: 2 };
let tmp: string;
let state: DraState;
const rng = new Rng(4);
const normals = Array.from({ length: 8 }, () => normalFeatures(rng, spec));
const test = Array.from({ length: 5 }, () => withDefect(rng, normalFeatures(rng, spec), { from: 0, to: 2 }));

beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'swan-model-'));
  state = await trainFast(
    { normals, anomalies: [test[0]], pseudo: normals.map((n) => [withDefect(rng, n, { from: 2, to: 4 })]) },
    resolveSettings({
      seed: 3,
      steps: 4,
      batchNormals: 4,
      batchAnomalies: 2,
      residualReduce: 3,
      residualWidth: 3,
      normalityWidth: 4,
      knnHead: true,
    }),
  );
});

afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const save = (dir: string) =>
  saveModel(dir, { state, backbone, trainingImageIds: ['a', 'b'], metrics: { auc: 0.9 } });

async function expectProblem(p: Promise<unknown>, problem: string, message: RegExp) {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelFileError);
  expect((err as ModelFileError).problem).toBe(problem);
  expect((err as Error).message).toMatch(message);
}

describe('model file', () => {
  it('records the backend that trained the model', async () => {
    const dir = path.join(tmp, 'backend');
    const backend = { tag: 'cpu', description: 'cpu (pure JavaScript, requested)' };
    const manifest = await saveModel(dir, { state, backbone, backend, trainingImageIds: ['a'] });
    expect(manifest.backend).toEqual(backend);
    expect((await loadModel(dir)).manifest.backend).toEqual(backend);
  });

  it('round-trips: identical scores after save and load; manifest describes the model', async () => {
    const dir = path.join(tmp, 'm1');
    const manifest = await save(dir);
    expect(manifest.formatVersion).toBe(2);
    expect(Object.keys(manifest.files).sort()).toEqual([
      'knn.bin',
      'reference.bin',
      'state.json',
      'weights.bin',
    ]);
    const loaded = await loadModel(dir, { backboneId: backbone.id, inputSize: 224 });
    expect(loaded.manifest.trainingImageIds).toEqual(['a', 'b']);
    expect(loaded.manifest.reference.shapes).toEqual([
      { h: 4, w: 4, c: 6 },
      { h: 2, w: 2, c: 6 },
    ]);
    expect(loaded.manifest.seed).toBe(3);
    expect(loaded.manifest.metrics).toEqual({ auc: 0.9 });
    const a = scoreFeatures(state, test);
    const b = scoreFeatures(loaded.state, test);
    expect(b.map((s) => s.total)).toEqual(a.map((s) => s.total));
    expect(Array.from(b[0].heatmap.data)).toEqual(Array.from(a[0].heatmap.data));
  });

  it('replaces an existing model only with a complete one and leaves no temporary folder', async () => {
    const dir = path.join(tmp, 'm2');
    await save(dir);
    await saveModel(dir, { state, backbone, trainingImageIds: ['c'] });
    expect((await loadModel(dir)).manifest.trainingImageIds).toEqual(['c']);
    const left = (await fs.readdir(tmp)).filter((n) => n.includes('.tmp-') || n.includes('.old-'));
    expect(left).toEqual([]);
  });

  it('refuses another format version', async () => {
    const dir = path.join(tmp, 'm3');
    await save(dir);
    const mf = path.join(dir, 'manifest.json');
    const m = JSON.parse(await fs.readFile(mf, 'utf8'));
    m.formatVersion = 3;
    await fs.writeFile(mf, JSON.stringify(m));
    await expectProblem(loadModel(dir), 'version', /format version 3 is not supported/);
  });

  it('still loads a file of format version 1 (before fine-tuned backbones)', async () => {
    const dir = path.join(tmp, 'v1');
    await save(dir);
    const mf = path.join(dir, 'manifest.json');
    const m = JSON.parse(await fs.readFile(mf, 'utf8'));
    m.formatVersion = 1;
    await fs.writeFile(mf, JSON.stringify(m));
    const loaded = await loadModel(dir);
    expect(loaded.manifest.formatVersion).toBe(1);
    expect(scoreFeatures(loaded.state, test).map((s) => s.total)).toEqual(
      scoreFeatures(state, test).map((s) => s.total),
    );
  });

  it("keeps a full-mode model's backbone weights in backbone.bin, checksummed", async () => {
    const dir = path.join(tmp, 'full');
    const weights = [
      { name: 'conv1/kernel', shape: [3, 3, 3, 2], data: Float32Array.from({ length: 54 }, (_, i) => i / 7) },
      { name: 'conv1/bias', shape: [2], data: Float32Array.from([0.5, -0.5]) },
    ];
    const manifest = await saveModel(dir, {
      state: { ...state, backbone: weights },
      backbone,
      trainingImageIds: ['a'],
    });
    expect(manifest.files['backbone.bin']?.bytes).toBe(56 * 4);
    const loaded = await loadModel(dir);
    expect(loaded.state.backbone?.map((w) => w.name)).toEqual(['conv1/kernel', 'conv1/bias']);
    expect(Array.from(loaded.state.backbone![0].data)).toEqual(Array.from(weights[0].data));
    expect(loaded.state.backbone![1].shape).toEqual([2]);
  });

  it('refuses another backbone or input size', async () => {
    const dir = path.join(tmp, 'm4');
    await save(dir);
    await expectProblem(
      loadModel(dir, { backboneId: 'resnet18' }),
      'backbone',
      /backbone 'mobilenet_v1_0.75', not 'resnet18'/,
    );
    await expectProblem(loadModel(dir, { inputSize: 448 }), 'inputSize', /input size 224, not 448/);
  });

  it('refuses a damaged file (checksum) and a missing file, naming it', async () => {
    const dir = path.join(tmp, 'm5');
    await save(dir);
    const wf = path.join(dir, 'weights.bin');
    const buf = await fs.readFile(wf);
    buf[10] ^= 0xff;
    await fs.writeFile(wf, buf);
    await expectProblem(loadModel(dir), 'checksum', /weights\.bin does not match its checksum/);
    await fs.rm(path.join(dir, 'reference.bin'));
    // Files are checked in manifest order; remove the damaged one's damage to reach the missing one.
    buf[10] ^= 0xff;
    await fs.writeFile(wf, buf);
    await expectProblem(loadModel(dir), 'missing', /reference\.bin is missing/);
    await expectProblem(loadModel(path.join(tmp, 'nowhere')), 'missing', /manifest\.json is missing/);
  });

  it('refuses a manifest that is not JSON', async () => {
    const dir = path.join(tmp, 'm6');
    await save(dir);
    await fs.writeFile(path.join(dir, 'manifest.json'), '{ not json');
    await expectProblem(loadModel(dir), 'corrupt', /not valid JSON/);
  });

  it('refuses a manifest field of the wrong type, naming the field (model-schema.ts)', async () => {
    const dir = path.join(tmp, 'm7');
    await save(dir);
    const mf = path.join(dir, 'manifest.json');
    const m = JSON.parse(await fs.readFile(mf, 'utf8'));
    m.calibration = 'none';
    m.backbone.inputSize = -3;
    await fs.writeFile(mf, JSON.stringify(m));
    await expectProblem(loadModel(dir), 'corrupt', /manifest\.json: backbone\.inputSize: .*calibration: /);
  });

  it('refuses weights that are not finite numbers', async () => {
    const dir = path.join(tmp, 'm8');
    const bad = structuredClone(state);
    bad.weights.patch.w[0] = Number.NaN;
    await saveModel(dir, { state: bad, backbone, trainingImageIds: ['a'] });
    await expectProblem(loadModel(dir), 'corrupt', /weights\.bin holds numbers that are not finite/);
  });
});
