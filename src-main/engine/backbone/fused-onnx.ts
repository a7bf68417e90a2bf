/**
 * A fused plan (fuse.ts) as an ONNX graph for onnxruntime-node: the same folded kernels and
 * biases the TF.js runner uses, so both runtimes compute the same network (inputs and outputs
 * as onnx-graph.ts describes). Keras 'same' is TF's SAME, whose odd padding goes at the end:
 * ONNX auto_pad SAME_UPPER.
 */
import type { FusedPlan, Padding, PlanOp, PlanTensor } from './fuse';
import { GraphBuilder, type Attr } from './onnx-graph';
import type { Normalization } from './normalize';
import { EngineError } from '../types';

/** TF conv kernel [kh, kw, in, out] -> ONNX [out, in, kh, kw]; depthwise [kh, kw, C, M] -> [C*M, 1, kh, kw]. */
export function onnxKernel(k: PlanTensor, depthwise: boolean): { data: Float32Array; dims: number[] } {
  const [kh, kw, a, b] = k.shape as [number, number, number, number];
  const out = new Float32Array(k.data.length);
  // Both layouts: source index ((i*kw + j)*a + p)*b + q; ONNX output channel, input channel.
  const dims = depthwise ? [a * b, 1, kh, kw] : [b, a, kh, kw];
  for (let i = 0; i < kh; i++)
    for (let j = 0; j < kw; j++)
      for (let p = 0; p < a; p++)
        for (let q = 0; q < b; q++) {
          const src = ((i * kw + j) * a + p) * b + q;
          const dst = depthwise ? (p * b + q) * kh * kw + i * kw + j : ((q * a + p) * kh + i) * kw + j;
          out[dst] = k.data[src]!;
        }
  return { data: out, dims };
}

const autoPad = (pad: Padding): Attr => ({ name: 'auto_pad', s: pad === 'same' ? 'SAME_UPPER' : 'VALID' });

function emitAct(g: GraphBuilder, act: 'relu' | 'relu6', input: string, output: string): void {
  if (act === 'relu') g.node('Relu', [input], [output]);
  else g.node('Clip', [input, 'relu6_min', 'relu6_max'], [output]);
}

function emit(g: GraphBuilder, o: PlanOp): void {
  const [x] = o.inputs as [string];
  switch (o.op) {
    case 'conv': {
      const k = onnxKernel(o.kernel, o.depthwise);
      const weight = g.constant(`${o.output}_weight`, k.data, k.dims);
      const bias = g.constant(`${o.output}_bias`, o.bias, [o.bias.length]);
      const conv = o.act === 'linear' ? o.output : `${o.output}_linear`;
      g.node(
        'Conv',
        [x, weight, bias],
        [conv],
        [
          { name: 'kernel_shape', ints: k.dims.slice(2) },
          { name: 'strides', ints: o.strides },
          { name: 'dilations', ints: o.dilations },
          { name: 'group', i: o.depthwise ? o.kernel.shape[2]! : 1 },
          autoPad(o.pad),
        ],
      );
      if (o.act !== 'linear') emitAct(g, o.act, conv, o.output);
      return;
    }
    case 'affine': {
      const c = o.scale.length;
      const scale = g.constant(`${o.output}_scale`, o.scale, [1, c, 1, 1]);
      const shift = g.constant(`${o.output}_shift`, o.shift, [1, c, 1, 1]);
      g.node('Mul', [x, scale], [`${o.output}_scaled`]);
      g.node('Add', [`${o.output}_scaled`, shift], [o.output]);
      return;
    }
    case 'act':
      if (o.act === 'linear') g.node('Identity', [x], [o.output]);
      else emitAct(g, o.act, x, o.output);
      return;
    case 'add':
      g.node('Sum', o.inputs, [o.output]);
      return;
    case 'identity':
      g.node('Identity', [x], [o.output]);
      return;
    case 'pad': {
      const [t, b, l, r] = o.pads;
      const pads = g.int64Constant(`${o.output}_pads`, [0, 0, t, l, 0, 0, b, r]);
      g.node('Pad', [x, pads], [o.output]);
      return;
    }
    case 'pool':
      g.node(
        o.kind === 'max' ? 'MaxPool' : 'AveragePool',
        [x],
        [o.output],
        [{ name: 'kernel_shape', ints: o.size }, { name: 'strides', ints: o.strides }, autoPad(o.pad)],
      );
      return;
  }
}

/**
 * The serialised ONNX model of `plan`: outputs onnxOutputName(layer) for each of `layers` and,
 * if `pooledLayer`, ONNX_POOLED (each a layer the plan was asked for).
 */
export function fusedPlanOnnx(
  plan: FusedPlan,
  normalization: Normalization,
  layers: string[],
  graphName: string,
  pooledLayer?: string,
): Uint8Array {
  const g = new GraphBuilder();
  g.constant('relu6_min', new Float32Array([0]), []);
  g.constant('relu6_max', new Float32Array([6]), []);
  g.normalizedInput(normalization, plan.input);
  for (const o of plan.ops) emit(g, o);
  const valueOf = (layer: string): string => {
    const v = plan.valueOf[layer];
    if (v === undefined) throw new EngineError(`The plan does not compute layer '${layer}'`);
    return v;
  };
  for (const l of layers) g.nhwcOutput(l, valueOf(l));
  if (pooledLayer) g.pooledOutput(valueOf(pooledLayer));
  return g.encode(graphName);
}
