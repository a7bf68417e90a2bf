/**
 * Runs a fused plan (fuse.ts) on TF.js: tf.fused.conv2d / depthwiseConv2d with the folded bias
 * and the activation in the same kernel (XNNPACK's clamp on wasm).
 */
import * as tf from '@tensorflow/tfjs';
import { planFused, type Act, type FusedPlan, type PlanOp } from './fuse';

export interface FusedNet {
  /** Normalised NHWC input -> feature layer output. */
  run(x: tf.Tensor4D): tf.Tensor4D;
  /** The same pass, also returning the outputs of the tap layers (compileFused's `tapLayers`, in order). */
  runTapped(x: tf.Tensor4D): [tf.Tensor4D, ...tf.Tensor4D[]];
  dispose(): void;
  /** Number of op steps (for tests and diagnostics). */
  steps: number;
}

type Run = (xs: tf.Tensor4D[]) => tf.Tensor4D;

function applyAct(x: tf.Tensor4D, a: Act): tf.Tensor4D {
  if (a === 'relu') return tf.relu(x);
  if (a === 'relu6') return tf.relu6(x);
  return x;
}

function runnerOf(o: PlanOp, keep: <T extends tf.Tensor>(t: T) => T): Run {
  switch (o.op) {
    case 'conv': {
      const { strides, dilations, pad, act: activation, depthwise } = o;
      const filter = keep(tf.tensor4d(o.kernel.data, o.kernel.shape as [number, number, number, number]));
      const bias = keep(tf.tensor1d(o.bias));
      return ([x]) =>
        depthwise
          ? tf.fused.depthwiseConv2d({ x: x!, filter, strides, pad, dilations, bias, activation })
          : tf.fused.conv2d({ x: x!, filter, strides, pad, dilations, bias, activation });
    }
    case 'affine': {
      const scale = keep(tf.tensor1d(o.scale));
      const shift = keep(tf.tensor1d(o.shift));
      return ([x]) => tf.add(tf.mul(x!, scale), shift);
    }
    case 'act':
      return ([x]) => applyAct(x!, o.act);
    case 'add':
      return (xs) => tf.addN(xs);
    case 'identity':
      return ([x]) => tf.clone(x!);
    case 'pad': {
      const [t, b, l, r] = o.pads;
      const paddings: [number, number][] = [
        [0, 0],
        [t, b],
        [l, r],
        [0, 0],
      ];
      return ([x]) => tf.pad(x!, paddings);
    }
    case 'pool': {
      const op = o.kind === 'max' ? tf.maxPool : tf.avgPool;
      return ([x]) => op(x!, o.size, o.strides, o.pad);
    }
  }
}

/** The plan's ops as TF.js kernels holding their own weight tensors. */
export function tfjsFusedNet(plan: FusedPlan): FusedNet {
  const owned: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T): T => {
    owned.push(t);
    return t;
  };
  const steps = plan.ops.map((o) => ({ inputs: o.inputs, output: o.output, run: runnerOf(o, keep) }));
  const { input, output: outputName, taps: tapNames } = plan;
  // How many steps read each value, so intermediates are freed as soon as possible.
  const uses = new Map<string, number>();
  for (const s of steps) for (const i of s.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
  const keepAlive = (n: string) => n === input || n === outputName || tapNames.includes(n);

  const pass = (x: tf.Tensor4D): Map<string, tf.Tensor4D> => {
    const values = new Map<string, tf.Tensor4D>([[input, x]]);
    const left = new Map(uses);
    for (const s of steps) {
      const xs = s.inputs.map((n) => values.get(n)!);
      values.set(s.output, s.run(xs));
      for (const n of s.inputs) {
        const k = left.get(n)! - 1;
        left.set(n, k);
        if (k === 0 && !keepAlive(n)) {
          values.get(n)!.dispose();
          values.delete(n);
        }
      }
    }
    return values;
  };

  return {
    steps: steps.length,
    run(x: tf.Tensor4D): tf.Tensor4D {
      return tf.tidy(() => pass(x).get(outputName)!);
    },
    runTapped(x: tf.Tensor4D): [tf.Tensor4D, ...tf.Tensor4D[]] {
      return tf.tidy(() => {
        const values = pass(x);
        // A tap that is the feature layer itself is returned twice: clone, so each owns its tensor.
        return [
          values.get(outputName)!,
          ...tapNames.map((n) => (n === outputName ? tf.clone(values.get(n)!) : values.get(n)!)),
        ];
      });
    },
    dispose() {
      tf.dispose(owned);
    },
  };
}

/** planFused then tfjsFusedNet; null when the model holds a layer the plan does not know. */
export function compileFused(model: tf.LayersModel, featureLayer: string, tapLayers: string[] = []): FusedNet | null {
  const plan = planFused(model, featureLayer, tapLayers);
  return plan ? tfjsFusedNet(plan) : null;
}
