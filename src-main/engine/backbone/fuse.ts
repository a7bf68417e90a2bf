/**
 * Compiles a frozen layers model, up to one layer, into a plain list of fused TF.js ops.
 *
 * Why: running the layers model executes conv, BatchNorm and activation as three kernels with
 * three full-size intermediate tensors each. Folding BatchNorm into the convolution weights at
 * load time and using tf.fused.conv2d / tf.fused.depthwiseConv2d (bias + relu6 in the same
 * kernel, XNNPACK's clamp on wasm) makes inference markedly faster and leaner.
 *
 * Only the layer types CNN backbones need are handled; for anything else `compileFused`
 * returns null and the caller falls back to the layers model.
 */
import * as tf from '@tensorflow/tfjs';
import { EngineError } from '../types';

type Act = 'linear' | 'relu' | 'relu6';

interface Step {
  inputs: string[];
  output: string;
  run: (xs: tf.Tensor4D[]) => tf.Tensor4D;
}

export interface FusedNet {
  /** Normalised NHWC input -> feature layer output. */
  run(x: tf.Tensor4D): tf.Tensor4D;
  /** The same pass, also returning the outputs of the tap layers (compileFused's `tapLayers`, in order). */
  runTapped(x: tf.Tensor4D): [tf.Tensor4D, ...tf.Tensor4D[]];
  dispose(): void;
  /** Number of op steps (for tests and diagnostics). */
  steps: number;
}

type Layer = tf.layers.Layer;
type Cfg = tf.serialization.ConfigDict;

function inputsOf(l: Layer): string[] {
  const node = l.inboundNodes[0];
  return node ? node.inboundLayers.map((p) => p.name) : [];
}

function namedWeights(l: Layer): Map<string, tf.Tensor> {
  const values = l.getWeights();
  const out = new Map<string, tf.Tensor>();
  l.weights.forEach((w, i) => {
    const short = w.originalName.split('/').pop()!;
    out.set(short, values[i]!);
  });
  return out;
}

function activationOf(l: Layer): Act | null {
  const cls = l.getClassName();
  const cfg = l.getConfig();
  if (cls === 'Activation') {
    const a = cfg.activation;
    return a === 'relu' || a === 'relu6' || a === 'linear' ? a : null;
  }
  if (cls === 'ReLU') {
    const max = cfg.maxValue as number | null | undefined;
    if (max == null) return 'relu';
    return max === 6 ? 'relu6' : null;
  }
  return null;
}

function applyAct(x: tf.Tensor4D, a: Act): tf.Tensor4D {
  if (a === 'relu') return tf.relu(x);
  if (a === 'relu6') return tf.relu6(x);
  return x;
}

function pair(v: unknown): [number, number] {
  if (Array.isArray(v)) return [Number(v[0]), Number(v[1] ?? v[0])];
  return [Number(v), Number(v)];
}

/** BatchNorm as y = x * scale + shift, per channel. */
function bnAffine(l: Layer): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
  const cfg = l.getConfig();
  const axis = cfg.axis as number;
  if (axis !== -1 && axis !== 3) throw new Error(`BatchNormalization on axis ${axis}`);
  const w = namedWeights(l);
  const mean = w.get('moving_mean') as tf.Tensor1D;
  const variance = w.get('moving_variance') as tf.Tensor1D;
  const c = mean.shape[0];
  const gamma = (w.get('gamma') as tf.Tensor1D | undefined) ?? tf.ones([c]);
  const beta = (w.get('beta') as tf.Tensor1D | undefined) ?? tf.zeros([c]);
  const eps = (cfg.epsilon as number | undefined) ?? 1e-3;
  return tf.tidy(() => {
    const scale = tf.div(gamma, tf.sqrt(tf.add(variance, eps))) as tf.Tensor1D;
    const shift = tf.sub(beta, tf.mul(mean, scale)) as tf.Tensor1D;
    return { scale, shift };
  });
}

/**
 * Returns null when the graph holds a layer this compiler does not know (the caller then uses
 * the layers model). Throws EngineError when `featureLayer` is not in the model.
 */
export function compileFused(
  model: tf.LayersModel,
  featureLayer: string,
  tapLayers: string[] = [],
): FusedNet | null {
  const byName = new Map(model.layers.map((l) => [l.name, l] as const));
  const outputs = [featureLayer, ...tapLayers];
  for (const name of outputs) {
    if (!byName.has(name)) throw new EngineError(`Layer '${name}' is not in the model`);
  }
  // Only the ancestors of the feature and tap layers are computed.
  const needed = new Set<string>();
  const stack = [...outputs];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (needed.has(name)) continue;
    needed.add(name);
    const layer = byName.get(name)!;
    if (layer.inboundNodes.length > 1) return null; // shared layers are not handled
    stack.push(...inputsOf(layer));
  }
  const consumers = new Map<string, Layer[]>();
  for (const l of model.layers) {
    if (!needed.has(l.name)) continue;
    for (const i of inputsOf(l)) consumers.set(i, [...(consumers.get(i) ?? []), l]);
  }
  const soleConsumer = (name: string): Layer | null => {
    if (outputs.includes(name)) return null;
    const c = consumers.get(name) ?? [];
    return c.length === 1 ? c[0]! : null;
  };

  const owned: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T): T => {
    owned.push(t);
    return t;
  };
  const steps: Step[] = [];
  const alias = new Map<string, string>();
  const absorbed = new Set<string>();
  let inputName: string | null = null;
  const resolve = (n: string): string => alias.get(n) ?? n;

  try {
    for (const l of model.layers) {
      if (!needed.has(l.name) || absorbed.has(l.name)) continue;
      const cls = l.getClassName();
      const cfg: Cfg = l.getConfig();
      const ins = inputsOf(l).map(resolve);
      if (cls === 'InputLayer') {
        if (inputName !== null) return null;
        inputName = l.name;
        continue;
      }
      if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') return null;
      switch (cls) {
        case 'Conv2D':
        case 'DepthwiseConv2D': {
          const depthwise = cls === 'DepthwiseConv2D';
          const w = namedWeights(l);
          let kernel = (depthwise ? w.get('depthwise_kernel') : w.get('kernel')) as tf.Tensor4D;
          const outC = depthwise ? kernel.shape[2] * kernel.shape[3] : kernel.shape[3];
          let bias = (w.get('bias') as tf.Tensor1D | undefined) ?? tf.zeros([outC]);
          let act: Act | null = cfg.activation === 'linear' ? 'linear' : null;
          if (cfg.activation === 'relu' || cfg.activation === 'relu6') act = cfg.activation;
          if (act === null) return null;
          let outName = l.name;
          const bn = act === 'linear' ? soleConsumer(l.name) : null;
          if (bn && bn.getClassName() === 'BatchNormalization') {
            const { scale, shift } = bnAffine(bn);
            const [k, b] = tf.tidy(() => {
              const s = depthwise ? scale.reshape([kernel.shape[2], kernel.shape[3]]) : scale;
              return [tf.mul(kernel, s) as tf.Tensor4D, tf.add(tf.mul(bias, scale), shift) as tf.Tensor1D];
            });
            scale.dispose();
            shift.dispose();
            kernel = k;
            bias = b;
            absorbed.add(bn.name);
            outName = bn.name;
            const next = soleConsumer(bn.name);
            const nextAct = next ? activationOf(next) : null;
            if (next && nextAct) {
              act = nextAct;
              absorbed.add(next.name);
              outName = next.name;
            }
          } else {
            const next = act === 'linear' ? soleConsumer(l.name) : null;
            const nextAct = next ? activationOf(next) : null;
            if (next && nextAct) {
              act = nextAct;
              absorbed.add(next.name);
              outName = next.name;
            }
          }
          const filter = keep(tf.clone(kernel));
          const b = keep(tf.clone(bias));
          if (kernel !== w.get('kernel') && kernel !== w.get('depthwise_kernel')) kernel.dispose();
          if (bias !== w.get('bias')) bias.dispose();
          const strides = pair(cfg.strides);
          const dilations = pair(cfg.dilationRate ?? 1);
          const pad = cfg.padding as 'same' | 'valid';
          const activation = act;
          // The conv and the layers folded into it all resolve to the fused output.
          for (const n of [l.name, ...absorbed]) if (!alias.has(n)) alias.set(n, outName);
          steps.push({
            inputs: ins,
            output: outName,
            run: ([x]) =>
              depthwise
                ? tf.fused.depthwiseConv2d({ x: x!, filter, strides, pad, dilations, bias: b, activation })
                : tf.fused.conv2d({ x: x!, filter, strides, pad, dilations, bias: b, activation }),
          });
          break;
        }
        case 'BatchNormalization': {
          const { scale, shift } = bnAffine(l);
          keep(scale);
          keep(shift);
          steps.push({ inputs: ins, output: l.name, run: ([x]) => tf.add(tf.mul(x!, scale), shift) });
          break;
        }
        case 'Activation':
        case 'ReLU': {
          const a = activationOf(l);
          if (!a) return null;
          steps.push({ inputs: ins, output: l.name, run: ([x]) => applyAct(x!, a) });
          break;
        }
        case 'Add':
          steps.push({ inputs: ins, output: l.name, run: (xs) => tf.addN(xs) });
          break;
        case 'Dropout':
          steps.push({ inputs: ins, output: l.name, run: ([x]) => tf.clone(x!) });
          break;
        case 'ZeroPadding2D': {
          const p = cfg.padding as [[number, number], [number, number]] | [number, number] | number;
          const [[t, bt], [lf, r]] = Array.isArray(p)
            ? Array.isArray(p[0])
              ? (p as [[number, number], [number, number]])
              : [pair(p[0]), pair(p[1])]
            : [pair(p), pair(p)];
          steps.push({
            inputs: ins,
            output: l.name,
            run: ([x]) =>
              tf.pad(x!, [
                [0, 0],
                [t, bt],
                [lf, r],
                [0, 0],
              ]),
          });
          break;
        }
        case 'MaxPooling2D':
        case 'AveragePooling2D': {
          const pool = pair(cfg.poolSize);
          const strides = pair(cfg.strides ?? cfg.poolSize);
          const pad = cfg.padding as 'same' | 'valid';
          const op = cls === 'MaxPooling2D' ? tf.maxPool : tf.avgPool;
          steps.push({ inputs: ins, output: l.name, run: ([x]) => op(x!, pool, strides, pad) });
          break;
        }
        default:
          return null;
      }
    }
  } catch (err) {
    tf.dispose(owned);
    if (err instanceof EngineError) throw err;
    return null;
  }
  if (inputName === null) {
    tf.dispose(owned);
    return null;
  }
  const input = inputName;
  const outputName = resolve(featureLayer);
  const tapNames = tapLayers.map(resolve);
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
