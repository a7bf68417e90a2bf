/**
 * Compiles a frozen layers model, up to some layers, into a runtime-neutral plan of fused ops:
 * each convolution with the BatchNorm after it folded into its kernel and bias, and the
 * activation after that as its own attribute. fused-tfjs.ts runs the plan on TF.js,
 * fused-onnx.ts emits it as an ONNX graph, so both runtimes compute the same network.
 *
 * Why fold: running the layers model executes conv, BatchNorm and activation as three kernels
 * with three full-size intermediate tensors each; one fused op per convolution is markedly
 * faster and leaner.
 *
 * Only the layer types CNN backbones need are handled; for anything else `planFused` returns
 * null and the caller falls back to the layers model.
 */
import * as tf from '@tensorflow/tfjs';
import { EngineError } from '../types';

export type Act = 'linear' | 'relu' | 'relu6';
export type Padding = 'same' | 'valid';
type Pair = [number, number];

/** Weights keep TF's layouts: conv [kh, kw, in, out], depthwise [kh, kw, in, multiplier]. */
export interface PlanTensor {
  data: Float32Array;
  shape: number[];
}

interface OpBase {
  inputs: string[];
  output: string;
}

export type PlanOp = OpBase &
  (
    | {
        op: 'conv';
        depthwise: boolean;
        kernel: PlanTensor;
        bias: Float32Array;
        strides: Pair;
        dilations: Pair;
        pad: Padding;
        act: Act;
      }
    /** A BatchNorm that follows no convolution: y = x * scale + shift per channel. */
    | { op: 'affine'; scale: Float32Array; shift: Float32Array }
    | { op: 'act'; act: Act }
    | { op: 'add' }
    | { op: 'identity' }
    /** Zero padding [top, bottom, left, right]. */
    | { op: 'pad'; pads: [number, number, number, number] }
    | { op: 'pool'; kind: 'max' | 'avg'; size: Pair; strides: Pair; pad: Padding }
  );

export interface FusedPlan {
  /** Name of the (normalised NHWC) input value. */
  input: string;
  ops: PlanOp[];
  /** The value holding the feature layer (a layer folded into a conv resolves to the conv's value). */
  output: string;
  /** The values holding the tap layers, in the order asked. */
  taps: string[];
  /** The value holding each layer asked for (the feature layer and the taps), by layer name. */
  valueOf: Record<string, string>;
}

type Layer = tf.layers.Layer;

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

function pair(v: unknown): Pair {
  if (Array.isArray(v)) return [Number(v[0]), Number(v[1] ?? v[0])];
  return [Number(v), Number(v)];
}

function values(t: tf.Tensor): Float32Array {
  return Float32Array.from(t.dataSync() as Float32Array);
}

/** BatchNorm as y = x * scale + shift, per channel (float32 on the TF.js backend). */
function bnAffine(l: Layer): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
  const cfg = l.getConfig();
  const axis = cfg.axis as number;
  if (axis !== -1 && axis !== 3) throw new Error(`BatchNormalization on axis ${axis}`);
  const w = namedWeights(l);
  const mean = w.get('moving_mean') as tf.Tensor1D;
  const variance = w.get('moving_variance') as tf.Tensor1D;
  const c = mean.shape[0];
  const eps = (cfg.epsilon as number | undefined) ?? 1e-3;
  return tf.tidy(() => {
    const gamma = (w.get('gamma') as tf.Tensor1D | undefined) ?? tf.ones([c]);
    const beta = (w.get('beta') as tf.Tensor1D | undefined) ?? tf.zeros([c]);
    const scale = tf.div(gamma, tf.sqrt(tf.add(variance, eps))) as tf.Tensor1D;
    const shift = tf.sub(beta, tf.mul(mean, scale)) as tf.Tensor1D;
    return { scale, shift };
  });
}

function zeroPads(p: unknown): [number, number, number, number] {
  const q = p as [[number, number], [number, number]] | [number, number] | number;
  const [[t, b], [l, r]] = Array.isArray(q)
    ? Array.isArray(q[0])
      ? (q as [[number, number], [number, number]])
      : [pair(q[0]), pair(q[1])]
    : [pair(q), pair(q)];
  return [t, b, l, r];
}

/**
 * Returns null when the graph holds a layer this compiler does not know (the caller then uses
 * the layers model). Throws EngineError when `featureLayer` or a tap is not in the model.
 * The folding runs as float32 TF.js ops on the current backend.
 */
export function planFused(model: tf.LayersModel, featureLayer: string, tapLayers: string[] = []): FusedPlan | null {
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

  const ops: PlanOp[] = [];
  const alias = new Map<string, string>();
  const absorbed = new Set<string>();
  let inputName: string | null = null;
  const resolve = (n: string): string => alias.get(n) ?? n;

  try {
    for (const l of model.layers) {
      if (!needed.has(l.name) || absorbed.has(l.name)) continue;
      const cls = l.getClassName();
      const cfg = l.getConfig();
      const io = { inputs: inputsOf(l).map(resolve), output: l.name };
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
          const kernel = (depthwise ? w.get('depthwise_kernel') : w.get('kernel')) as tf.Tensor4D;
          const outC = depthwise ? kernel.shape[2] * kernel.shape[3] : kernel.shape[3];
          let act: Act | null = cfg.activation === 'linear' ? 'linear' : null;
          if (cfg.activation === 'relu' || cfg.activation === 'relu6') act = cfg.activation;
          if (act === null) return null;
          let outName = l.name;
          const folded: string[] = [];
          const absorbAct = (after: string) => {
            const next = soleConsumer(after);
            const nextAct = next ? activationOf(next) : null;
            if (next && nextAct) {
              act = nextAct;
              folded.push(next.name);
              outName = next.name;
            }
          };
          let k: Float32Array;
          let b: Float32Array;
          const bn = act === 'linear' ? soleConsumer(l.name) : null;
          if (bn && bn.getClassName() === 'BatchNormalization') {
            const { scale, shift } = bnAffine(bn);
            // Values are read outside tidy: it would walk a returned typed array element by element.
            const foldedKB = tf.tidy(() => {
              const s = depthwise ? scale.reshape([kernel.shape[2], kernel.shape[3]]) : scale;
              const bias = (w.get('bias') as tf.Tensor1D | undefined) ?? tf.zeros([outC]);
              return [tf.mul(kernel, s), tf.add(tf.mul(bias, scale), shift)];
            });
            [k, b] = foldedKB.map(values) as [Float32Array, Float32Array];
            tf.dispose([scale, shift, ...foldedKB]);
            folded.push(bn.name);
            outName = bn.name;
            absorbAct(bn.name);
          } else {
            k = values(kernel);
            const bias = w.get('bias');
            b = bias ? values(bias) : new Float32Array(outC);
            if (act === 'linear') absorbAct(l.name);
          }
          for (const n of folded) absorbed.add(n);
          // The conv and the layers folded into it all resolve to the fused output.
          for (const n of [l.name, ...folded]) alias.set(n, outName);
          ops.push({
            op: 'conv',
            inputs: io.inputs,
            output: outName,
            depthwise,
            kernel: { data: k, shape: [...kernel.shape] },
            bias: b,
            strides: pair(cfg.strides),
            dilations: pair(cfg.dilationRate ?? 1),
            pad: cfg.padding as Padding,
            act,
          });
          break;
        }
        case 'BatchNormalization': {
          const { scale, shift } = bnAffine(l);
          ops.push({ op: 'affine', ...io, scale: values(scale), shift: values(shift) });
          tf.dispose([scale, shift]);
          break;
        }
        case 'Activation':
        case 'ReLU': {
          const a = activationOf(l);
          if (!a) return null;
          ops.push({ op: 'act', ...io, act: a });
          break;
        }
        case 'Add':
          ops.push({ op: 'add', ...io });
          break;
        case 'Dropout':
          ops.push({ op: 'identity', ...io });
          break;
        case 'ZeroPadding2D':
          ops.push({ op: 'pad', ...io, pads: zeroPads(cfg.padding) });
          break;
        case 'MaxPooling2D':
        case 'AveragePooling2D':
          ops.push({
            op: 'pool',
            ...io,
            kind: cls === 'MaxPooling2D' ? 'max' : 'avg',
            size: pair(cfg.poolSize),
            strides: pair(cfg.strides ?? cfg.poolSize),
            pad: cfg.padding as Padding,
          });
          break;
        default:
          return null;
      }
    }
  } catch (err) {
    if (err instanceof EngineError) throw err;
    return null;
  }
  if (inputName === null) return null;
  return {
    input: inputName,
    ops,
    output: resolve(featureLayer),
    taps: tapLayers.map(resolve),
    valueOf: Object.fromEntries(outputs.map((n) => [n, resolve(n)])),
  };
}
