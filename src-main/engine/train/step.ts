/**
 * One optimiser step of the DRA heads and its progress report, shared by fast mode (cached
 * feature maps in, heads only) and full mode (images in, backbone in the graph): the two
 * differ only in how a batch becomes per-level head outputs.
 */
import * as tf from '@tensorflow/tfjs';
import type { HeadName, TrainSettings } from '../types';
import type { Rng } from '../util/rng';
import { BN_MOMENTUM } from '../heads/forward';
import type { LevelOutput } from '../heads/forward';
import { imageScores } from '../heads/image-scores';
import type { DraWeights } from '../heads/state';
import type { ClippedAdam } from './adam';
import { draLoss, type DraHead, type SampleLabel } from './losses';
import type { TrainOptions } from './train-fast';

/** Running BatchNorm statistics, as PyTorch keeps them (unbiased variance, momentum 0.1). */
export function updateRunningBn(
  w: DraWeights,
  mean: Float32Array,
  variance: Float32Array,
  count: number,
): void {
  const r = w.residual;
  const unbias = count > 1 ? count / (count - 1) : 1;
  for (let i = 0; i < r.width; i++) {
    r.runMean[i] = (1 - BN_MOMENTUM) * r.runMean[i] + BN_MOMENTUM * mean[i];
    r.runVar[i] = (1 - BN_MOMENTUM) * r.runVar[i] + BN_MOMENTUM * variance[i] * unbias;
  }
}

export interface StepContext {
  params: tf.Variable[];
  adam: ClippedAdam;
  /** Weights whose running BatchNorm statistics the step updates. */
  base: DraWeights;
  settings: TrainSettings;
  lossRng: Rng;
  /** Heads switched off (their losses are not computed). */
  skip: DraHead[];
}

/**
 * Forward (built by `forward`, which runs under the gradient tape), loss, one clipped Adam
 * update and the running BatchNorm statistics. Returns the loss of each head.
 */
export function optimiseStep(
  ctx: StepContext,
  labels: readonly SampleLabel[],
  lr: number,
  forward: () => LevelOutput[],
): Partial<Record<HeadName, number>> {
  const losses: Partial<Record<HeadName, number>> = {};
  tf.tidy(() => {
    const bnStats: NonNullable<LevelOutput['bn']>[] = [];
    let perHead: Partial<Record<HeadName, tf.Scalar>> = {};
    const { grads } = tf.variableGrads(() => {
      const outs = forward();
      // variableGrads frees what f creates; these are read after the update.
      for (const out of outs) {
        bnStats.push({
          mean: tf.keep(out.bn!.mean),
          variance: tf.keep(out.bn!.variance),
          count: out.bn!.count,
        });
      }
      const loss = draLoss(
        ctx.settings.loss,
        imageScores(outs, ctx.settings.topKRatio),
        labels,
        ctx.lossRng,
        ctx.skip,
      );
      perHead = Object.fromEntries(Object.entries(loss.perHead).map(([h, t]) => [h, tf.keep(t)]));
      return loss.total;
    }, ctx.params);
    ctx.adam.step(
      ctx.params.map((p) => grads[p.name]),
      lr,
      ctx.settings.weightDecay,
      ctx.settings.gradClip,
    );
    for (const s of bnStats) {
      updateRunningBn(
        ctx.base,
        s.mean.dataSync() as Float32Array,
        s.variance.dataSync() as Float32Array,
        s.count,
      );
      s.mean.dispose();
      s.variance.dispose();
    }
    for (const [h, t] of Object.entries(perHead)) {
      losses[h as HeadName] = t.dataSync()[0];
      t.dispose();
    }
  });
  return losses;
}

/** Progress of training step `step` (0-based) of `steps`, with an ETA from the pace so far. */
export function reportStep(
  opts: TrainOptions,
  step: number,
  steps: number,
  startedMs: number,
  losses: Partial<Record<HeadName, number>>,
): void {
  const elapsed = (Date.now() - startedMs) / 1000;
  opts.onProgress?.({
    stage: 'train',
    step: step + 1,
    total: steps,
    losses,
    etaSeconds: (elapsed / (step + 1)) * (steps - step - 1),
  });
}
