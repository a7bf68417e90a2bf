/**
 * Fast mode: the backbone is frozen, its feature maps (training images and a pool of
 * pseudo-anomaly variants) are given, and only the four heads train, following dra.md's
 * recipe with the step count scaled down.
 */
import * as tf from '@tensorflow/tfjs';
import type { HeadName, ProgressFn, TrainSettings } from '../types';
import { EngineError } from '../types';
import { Rng } from '../util/rng';
import { disposeHeadTensors, forwardLevel, headTensors, readWeights, trainableList } from '../heads/forward';
import { initWeights } from '../heads/init';
import { activeHeads, ALL_DRA_HEADS } from '../heads/active';
import { headOptions, type HeadOptions } from '../heads/options';
import type { DraState, DraWeights } from '../heads/state';
import { throwIfAborted, yieldToEventLoop } from './abort';
import { optimiseStep, reportStep, type StepContext } from './step';
import { ClippedAdam, stepDecayLr } from './adam';
import { assembleLevel, meanMap } from './batch';
import type { FastTrainData } from './batch';
import type { DraHead } from './losses';
import { planBatch, type BatchPlan } from './sampler';
import {
  fastStepApplies,
  PlainAdam,
  StepBuffers,
  stepGradients,
  stepParams,
  weightsFromParams,
} from './fast-step';
import { updateRunningBn } from './step';
import type { SamplerConfig } from './sampler';
import { transformCount } from './transforms';
import { finishState } from '../infer/calibrate';
import { matchedNormals } from './matched';
import { headMatMul, type HeadMatMul, type MatMulRuntime } from './matmul-runtime';
import { trainingThreads, type ProductThreads } from './product-threads';

export type { FastTrainData } from './batch';

export interface TrainOptions {
  onProgress?: ProgressFn;
  signal?: AbortSignal;
  /** Force the tape or the written-out step (benchmarks compare them); default: written out where it applies. */
  stepper?: 'tape' | 'written';
  /** Runtime of the written-out step's products (matmul-runtime.ts); default: the fastest installed. */
  matMul?: MatMulRuntime;
  /** onnxruntime's threads for them (product-threads.ts); default: trainingThreads(). */
  threads?: ProductThreads;
}

/** Checks that every map has the same shape per level; returns the level shapes used. */
export function checkFastData(data: FastTrainData, levels: number): { h: number; w: number; c: number }[] {
  if (data.normals.length === 0) throw new EngineError('Training needs at least one normal image.');
  if (data.pseudo.length !== data.normals.length) {
    throw new EngineError(
      `Pseudo-anomaly pool has ${data.pseudo.length} entries for ${data.normals.length} normal images.`,
    );
  }
  const first = data.normals[0];
  if (first.levels.length < levels) {
    throw new EngineError(
      `Features have ${first.levels.length} pyramid level(s), the settings ask for ${levels}.`,
    );
  }
  const shapes = first.levels.slice(0, levels).map(({ h, w, c }) => ({ h, w, c }));
  const all = [...data.normals, ...data.anomalies, ...data.pseudo.flat()];
  for (const im of all) {
    for (let l = 0; l < levels; l++) {
      const m = im.levels[l];
      const s = shapes[l];
      if (!m || m.h !== s.h || m.w !== s.w || m.c !== s.c || m.data.length !== s.h * s.w * s.c) {
        throw new EngineError(
          `Feature map shape mismatch at pyramid level ${l}: expected ${s.h}x${s.w}x${s.c}` +
            (m ? `, got ${m.h}x${m.w}x${m.c} (${m.data.length} values).` : ', level missing.'),
        );
      }
    }
  }
  if (shapes.some((s) => s.c !== shapes[0].c))
    throw new EngineError('Pyramid levels differ in channel count.');
  // One NaN would silently turn every weight into NaN.
  for (const im of all) {
    for (let l = 0; l < levels; l++) {
      const d = im.levels[l].data;
      for (let j = 0; j < d.length; j++) {
        if (!Number.isFinite(d[j])) {
          throw new EngineError(`Feature map holds a non-finite value (${d[j]}) at pyramid level ${l}.`);
        }
      }
    }
  }
  return shapes;
}

export { updateRunningBn };

export async function trainFast(
  data: FastTrainData,
  settings: TrainSettings,
  opts: TrainOptions = {},
): Promise<DraState> {
  const nLevels = Math.max(1, settings.pyramidLevels);
  const shapes = checkFastData(data, nLevels);
  const ho = headOptions(settings);
  const steps = Math.max(1, Math.floor(settings.steps));
  const hasSeen = data.anomalies.length > 0;

  const root = new Rng(settings.seed);
  const initRng = root.fork();
  const sampleRng = root.fork();
  const lossRng = root.fork();

  const base = initWeights(
    {
      channels: shapes[0].c,
      reduceTo: ho.reduceTo,
      width: ho.width,
      hidden: ho.hidden,
      patchHidden: ho.patchHidden,
    },
    initRng,
  );
  const samplerCfg: SamplerConfig = {
    normals: data.normals.length,
    anomalies: data.anomalies.length,
    pseudoCounts: data.pseudo.map((p) => p.length),
    batchNormals: settings.batchNormals,
    batchAnomalies: settings.batchAnomalies,
    referenceCount: Math.max(1, settings.referenceCount),
    pseudoProbability: 0.5,
    // Every level must get the same transform, so draw from what the smallest group allows.
    transforms: ho.augment ? Math.min(...shapes.map((s) => transformCount(s.h, s.w))) : 1,
  };
  if ((settings.matchedNormals ?? 0) > 0 && hasSeen) {
    const indices = matchedNormals(data.normals, data.anomalies, settings.matchedNormals!);
    samplerCfg.matched = { indices, perBatch: Math.floor(settings.batchNormals / 2) };
  }
  const active = activeHeads(settings, hasSeen);
  if (active.length === 0)
    throw new EngineError(
      'No head left to train: settings.heads names only the seen head and no anomaly is labelled.',
    );
  const skip: DraHead[] = ALL_DRA_HEADS.filter((h) => !active.includes(h));

  const stepper = (opts.stepper ? opts.stepper === 'written' : fastStepApplies(settings))
    ? writtenOutStepper(
        base,
        shapes,
        ho,
        data,
        settings,
        lossRng,
        skip,
        await headMatMul(opts.matMul, opts.threads ?? trainingThreads()),
      )
    : tapeStepper(base, shapes, data, settings, lossRng, skip);
  const started = Date.now();
  try {
    for (let step = 0; step < steps; step++) {
      throwIfAborted(opts.signal);
      const plan = planBatch(sampleRng, samplerCfg);
      const lr = stepDecayLr(settings.learningRate, step, steps);
      const losses = await stepper.step(plan, lr);
      reportStep(opts, step, steps, started, losses);
      // Lets an abort (or a progress message) through between steps.
      await yieldToEventLoop();
    }
    throwIfAborted(opts.signal);

    opts.onProgress?.({ stage: 'reference', step: 0, total: 1 });
    const weights = stepper.weights();
    const state: DraState = {
      formatVersion: 1,
      settings: { ...settings },
      levels: shapes,
      weights,
      // Fixed M_r: the mean over all training normals (see finishState for why).
      reference: shapes.map((_, l) => meanMap(data.normals, l)),
      hasSeen,
      calibration: {},
    };
    opts.onProgress?.({ stage: 'calibrate', step: 0, total: 1 });
    return await finishState(state, data.normals, data.anomalies);
  } finally {
    stepper.dispose();
  }
}

interface Stepper {
  step(
    plan: BatchPlan,
    lr: number,
  ): Partial<Record<HeadName, number>> | Promise<Partial<Record<HeadName, number>>>;
  weights(): DraWeights;
  dispose(): void;
}

/** The backward pass written out (fast-step.ts): the default heads. */
function writtenOutStepper(
  base: DraWeights,
  shapes: { h: number; w: number; c: number }[],
  ho: HeadOptions,
  data: FastTrainData,
  settings: TrainSettings,
  lossRng: Rng,
  skip: DraHead[],
  mm: HeadMatMul,
): Stepper {
  const params = stepParams(base);
  const adam = new PlainAdam(params);
  const dims = { reduceTo: ho.reduceTo, width: ho.width, hidden: ho.hidden };
  const buffers = new StepBuffers();
  return {
    async step(plan, lr) {
      const r = await stepGradients(params, shapes, dims, data, plan, settings, lossRng, skip, buffers, mm);
      adam.step(r.grads, lr, settings.weightDecay, settings.gradClip);
      for (const s of r.bn) updateRunningBn(base, s.mean, s.variance, s.count);
      return r.losses;
    },
    weights: () => weightsFromParams(params, base),
    dispose() {},
  };
}

/** TF.js's gradient tape over forwardLevel: the per-patch MLP heads and the unreduced residual. */
function tapeStepper(
  base: DraWeights,
  shapes: { h: number; w: number; c: number }[],
  data: FastTrainData,
  settings: TrainSettings,
  lossRng: Rng,
  skip: DraHead[],
): Stepper {
  const vars = headTensors(base, true);
  const params = trainableList(vars);
  const adam = new ClippedAdam(params);
  const ctx: StepContext = { params, adam, base, settings, lossRng, skip };
  return {
    step(plan, lr) {
      const labels = plan.items.map((s) => s.label);
      const assembled = shapes.map((_, l) => assembleLevel(data, plan, l));
      return optimiseStep(ctx, labels, lr, () =>
        assembled.map((a) => {
          const x = tf.tensor4d(a.x, [labels.length, a.h, a.w, a.c]);
          const ref = tf.tensor3d(a.ref, [a.h, a.w, a.c]);
          const pooled = tf.tensor2d(a.pooled, [labels.length, a.c]);
          return forwardLevel(vars, x, ref, { training: true }, true, pooled);
        }),
      );
    },
    weights: () => readWeights(vars, base),
    dispose() {
      adam.dispose();
      disposeHeadTensors(vars);
    },
  };
}
