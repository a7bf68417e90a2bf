import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { forwardLevel, headTensors, disposeHeadTensors } from '../../../src-main/engine/heads/forward';
import { imageScores } from '../../../src-main/engine/heads/image-scores';
import { initWeights } from '../../../src-main/engine/heads/init';
import { assembleLevel, type FastTrainData } from '../../../src-main/engine/train/batch';
import { draLoss, type DraHead } from '../../../src-main/engine/train/losses';
import { planBatch } from '../../../src-main/engine/train/sampler';
import {
  PARAM_NAMES,
  StepBuffers,
  stepGradients,
  type StepMatMul,
  stepParams,
  type ParamName,
} from '../../../src-main/engine/train/fast-step';
import type { FeatureMap, ImageFeatures, LossKind } from '../../../src-main/engine/types';
import { Rng } from '../../../src-main/engine/util/rng';
import { headMatMul } from '../../../src-main/engine/train/matmul-runtime';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const C = 12;
const SHAPES = [
  { h: 4, w: 4, c: C },
  { h: 2, w: 2, c: C },
];

function map(rng: Rng, h: number, w: number): FeatureMap {
  const data = new Float32Array(h * w * C);
  for (let i = 0; i < data.length; i++) data[i] = Math.max(0, rng.normal()) * 1.5;
  return { h, w, c: C, data };
}
const image = (rng: Rng): ImageFeatures => ({ levels: SHAPES.map((s) => map(rng, s.h, s.w)) });

function problem(seed: number): FastTrainData {
  const rng = new Rng(seed);
  const normals = Array.from({ length: 6 }, () => image(rng));
  return {
    normals,
    // Fewer anomalies than batch slots: the written-out step multiplies repeated maps once.
    anomalies: Array.from({ length: 2 }, () => image(rng)),
    pseudo: normals.map(() => [image(rng), image(rng)]),
  };
}

/** Gradients of the same loss through forwardLevel and TF.js's tape (what training used before). */
async function tapeGradients(
  data: FastTrainData,
  seed: number,
  loss: LossKind,
  skip: DraHead[],
  mm: StepMatMul,
) {
  const weights = initWeights({ channels: C, reduceTo: 5, width: 6, hidden: 7 }, new Rng(seed));
  const plan = planBatch(new Rng(seed + 1), {
    normals: 6,
    anomalies: 2,
    pseudoCounts: [2, 2, 2, 2, 2, 2],
    batchNormals: 4,
    batchAnomalies: 3,
    referenceCount: 3,
    pseudoProbability: 0.5,
    transforms: 4,
  });
  const t = headTensors(weights, true);
  const labels = plan.items.map((s) => s.label);
  const out = tf.tidy(() => {
    const bn: { mean: Float32Array; variance: Float32Array }[] = [];
    let perHead: Record<string, number> = {};
    const { grads } = tf.variableGrads(() => {
      const outs = SHAPES.map((_, l) => {
        const a = assembleLevel(data, plan, l);
        return forwardLevel(
          t,
          tf.tensor4d(a.x, [labels.length, a.h, a.w, a.c]),
          tf.tensor3d(a.ref, [a.h, a.w, a.c]),
          { training: true },
          true,
          tf.tensor2d(a.pooled, [labels.length, a.c]),
        );
      });
      for (const o of outs)
        bn.push({
          mean: o.bn!.mean.dataSync() as Float32Array,
          variance: o.bn!.variance.dataSync() as Float32Array,
        });
      const l = draLoss(loss, imageScores(outs, 0.25), labels, new Rng(seed + 2), skip);
      perHead = Object.fromEntries(Object.entries(l.perHead).map(([h, v]) => [h, v.dataSync()[0]]));
      return l.total;
    });
    const byName: Partial<Record<ParamName, Float32Array>> = {};
    for (const name of PARAM_NAMES) {
      // HeadTensors names its variables like the step's parameters.
      const v = (t as unknown as Record<string, tf.Variable>)[name];
      const g = grads[v.name];
      if (g) byName[name] = Float32Array.from(g.dataSync() as Float32Array);
    }
    return { grads: byName, bn, perHead };
  });
  disposeHeadTensors(t);
  const mine = await stepGradients(
    stepParams(weights),
    SHAPES,
    { reduceTo: 5, width: 6, hidden: 7 },
    data,
    plan,
    { loss, topKRatio: 0.25 },
    new Rng(seed + 2),
    skip,
    new StepBuffers(),
    mm,
  );
  return { tape: out, mine };
}

function expectClose(a: Float32Array, b: Float32Array, what: string): void {
  expect(a.length, what).toBe(b.length);
  const scale = Math.max(1e-6, ...Array.from(b, Math.abs));
  for (let i = 0; i < a.length; i++) {
    if (Math.abs(a[i] - b[i]) > 1e-4 * scale + 1e-6)
      throw new Error(`${what}[${i}]: ${a[i]} vs tape ${b[i]} (scale ${scale})`);
  }
}

describe('written-out fast-mode step', () => {
  for (const [loss, skip] of [
    ['deviation', []],
    ['bce', ['seen']],
    ['focal', ['normality', 'residual']],
  ] as [LossKind, DraHead[]][]) {
    it(`gives the tape's losses, gradients and BatchNorm statistics (${loss} loss, skipping ${skip.join(', ') || 'nothing'}), with either runtime's products`, async () => {
      for (const [seed, runtime] of [
        [3, 'tfjs'],
        [11, 'tfjs'],
        [3, 'onnxruntime'],
      ] as const) {
        const mm = await headMatMul(runtime);
        expect(mm.runtime).toBe(runtime);
        const { tape, mine } = await tapeGradients(problem(seed), seed, loss, skip, mm);
        expect(Object.keys(mine.losses).sort()).toEqual(Object.keys(tape.perHead).sort());
        for (const [h, v] of Object.entries(tape.perHead))
          expect(mine.losses[h as DraHead]!).toBeCloseTo(v, 4);
        expect(Object.keys(mine.grads).sort()).toEqual(Object.keys(tape.grads).sort());
        for (const name of PARAM_NAMES) {
          if (tape.grads[name]) expectClose(mine.grads[name]!, tape.grads[name]!, `${loss} ${name}`);
        }
        tape.bn.forEach((b, l) => {
          expectClose(mine.bn[l].mean, b.mean, `bn mean ${l}`);
          expectClose(mine.bn[l].variance, b.variance, `bn variance ${l}`);
        });
      }
    });
  }
});
