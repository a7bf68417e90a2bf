/**
 * Measures fast-mode head training on the wasm backend with random features of realistic
 * shapes: 75 normals + 10 anomalies, MobileNetV1 level 0 7x7x768 and level 1 4x4x768, a
 * pseudo pool of 4 variants per normal. Then times scoring of the same maps.
 *
 *   npx tsx scripts/bench-train.ts [--steps N] [--backend wasm|cpu] [--reduce R] [--width W]
 *
 * Steps and learning rate default to FAST_MODE_RECOMMENDED (heads/options.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { cpuMs, referenceOpMs } from './reference-op';
import '@tensorflow/tfjs-backend-wasm';
import { performance } from 'node:perf_hooks';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { trainFast } from '../src-main/engine/train';
import { scoreFeatures } from '../src-main/engine/infer';
import { resolveSettings } from '../src-main/engine/settings';
import { FAST_MODE_RECOMMENDED } from '../src-main/engine/heads/options';
import type { FeatureMap, ImageFeatures } from '../src-main/engine/types';
import { Rng } from '../src-main/engine/util/rng';

const { values } = parseArgs({
  options: {
    steps: { type: 'string' },
    backend: { type: 'string', default: 'wasm' },
    reduce: { type: 'string' },
    width: { type: 'string' },
    normals: { type: 'string', default: '75' },
    anomalies: { type: 'string', default: '10' },
    size: { type: 'string', default: '7' },
  },
});

function randomMap(rng: Rng, h: number, w: number, c: number): FeatureMap {
  const data = new Float32Array(h * w * c);
  // Post-ReLU6 activations: non-negative, mostly small.
  for (let i = 0; i < data.length; i++) data[i] = Math.max(0, rng.normal()) * 1.5;
  return { h, w, c, data };
}

function randomFeatures(rng: Rng, s0: number): ImageFeatures {
  const s1 = Math.ceil(s0 / 2);
  return { levels: [randomMap(rng, s0, s0, 768), randomMap(rng, s1, s1, 768)] };
}

async function main(): Promise<void> {
  await tf.setBackend(values.backend!);
  await tf.ready();
  const rng = new Rng(1);
  const s0 = Number(values.size);
  const nN = Number(values.normals);
  const nA = Number(values.anomalies);
  const normals = Array.from({ length: nN }, () => randomFeatures(rng, s0));
  const anomalies = Array.from({ length: nA }, () => randomFeatures(rng, s0));
  const pseudo = normals.map(() => Array.from({ length: 4 }, () => randomFeatures(rng, s0)));
  const settings = resolveSettings({
    mode: 'fast',
    ...FAST_MODE_RECOMMENDED,
    ...(values.steps ? { steps: Number(values.steps) } : {}),
    ...(values.reduce ? { residualReduce: Number(values.reduce) } : {}),
    ...(values.width ? { residualWidth: Number(values.width) } : {}),
  });

  const refBefore = referenceOpMs();
  let firstStep = 0;
  // Steps 2..N only (the first builds kernels, calibration runs after the last), in wall and
  // CPU time: on a shared machine wall time mostly measures the others.
  let stepsFrom = { wall: 0, cpu: 0 };
  let stepsTo = { wall: 0, cpu: 0 };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const state = await trainFast({ normals, anomalies, pseudo }, settings, {
    onProgress: (p) => {
      if (p.stage !== 'train') return;
      if (p.step === 1) {
        firstStep = performance.now() - t0;
        stepsFrom = { wall: performance.now(), cpu: cpuMs() };
      }
      if (p.step === settings.steps) stepsTo = { wall: performance.now(), cpu: cpuMs() };
    },
  });
  const trainMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const trainCpuSeconds = (cpu.user + cpu.system) / 1e6;

  const queries = [...normals, ...anomalies];
  const t1 = performance.now();
  const reps = 4;
  for (let r = 0; r < reps; r++) scoreFeatures(state, queries);
  const scoreMs = (performance.now() - t1) / reps;
  const refAfter = referenceOpMs();
  const refMs = Math.min(refBefore, refAfter);
  const n = Math.max(1, settings.steps - 1);
  const stepWallMs = (stepsTo.wall - stepsFrom.wall) / n;
  const stepCpuMs = (stepsTo.cpu - stepsFrom.cpu) / n;

  console.log(
    JSON.stringify(
      {
        backend: tf.getBackend(),
        images: nN + nA,
        shapes: state.levels,
        steps: settings.steps,
        batch: settings.batchNormals + settings.batchAnomalies,
        residual: { reduceTo: state.weights.residual.reduceTo, width: state.weights.residual.width },
        knnHead: settings.knnHead,
        trainSeconds: +(trainMs / 1000).toFixed(2),
        trainCpuSeconds: +trainCpuSeconds.toFixed(2),
        loadAverage: os.loadavg()[0],
        firstStepMs: +firstStep.toFixed(0),
        msPerStep: +((trainMs - firstStep) / Math.max(1, settings.steps - 1)).toFixed(1),
        stepWallMs: +stepWallMs.toFixed(1),
        stepCpuMs: +stepCpuMs.toFixed(1),
        referenceOpCpuMs: +refMs.toFixed(2),
        stepPerReferenceOp: +(stepCpuMs / refMs).toFixed(2),
        scoreImagesPerSecond: +((queries.length / scoreMs) * 1000).toFixed(0),
      },
      null,
      2,
    ),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
