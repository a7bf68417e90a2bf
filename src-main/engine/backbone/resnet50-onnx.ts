/**
 * The ONNX graph of ResNet-50 v2 stages 1-3, built from the same op list as the TF.js model
 * (resnet50-net.ts) and the `.npy` weights, for onnxruntime-node. It takes raw NHWC RGB
 * (0..255), normalises inside, and returns the asked layers NHWC plus, when a pooled layer is
 * given, its per-channel mean then standard deviation [N, 2C] (as backbone.ts computes them).
 * BatchNorm stays a BatchNormalization node: onnxruntime folds it into the preceding
 * convolution itself.
 */
import onnxProto from 'onnx-proto';
import { IMAGENET_NORMALIZATION } from './normalize';
import { type NetOp, NET_INPUT, opsFor, RESNET50_BN_EPSILON, type Resnet50Weights } from './resnet50-net';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const OPSET = 13;

export const ONNX_PIXELS = 'pixels';
export const ONNX_POOLED = 'pooled';
/** Name of the graph output carrying layer `name` (NHWC). */
export const onnxOutputName = (name: string): string => `out_${name}`;

type Attr = { name: string; ints?: number[]; i?: number; f?: number };

function attr(a: Attr): onnxProto.onnx.IAttributeProto {
  const A = onnx.AttributeProto.AttributeType;
  if (a.ints) return { name: a.name, type: A.INTS, ints: a.ints };
  if (a.f !== undefined) return { name: a.name, type: A.FLOAT, f: a.f };
  return { name: a.name, type: A.INT, i: a.i };
}

class GraphBuilder {
  readonly nodes: onnxProto.onnx.INodeProto[] = [];
  readonly initializers: onnxProto.onnx.ITensorProto[] = [];

  node(opType: string, input: string[], output: string[], attrs: Attr[] = []): void {
    this.nodes.push({ opType, input, output, name: output[0], attribute: attrs.map(attr) });
  }

  constant(name: string, data: Float32Array, dims: number[]): string {
    this.initializers.push({
      name,
      dims,
      dataType: FLOAT,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }
}

function floatInfo(name: string, dims: (number | string)[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function emit(g: GraphBuilder, o: NetOp, w: Resnet50Weights): void {
  switch (o.op) {
    case 'bn': {
      const p = w.bn.get(o.name)!;
      const c = p.gamma.length;
      const ins = [
        o.input,
        ...(['gamma', 'beta', 'mean', 'variance'] as const).map((k) =>
          g.constant(`${o.name}_${k}`, p[k], [c]),
        ),
      ];
      g.node('BatchNormalization', ins, [o.output], [{ name: 'epsilon', f: RESNET50_BN_EPSILON }]);
      return;
    }
    case 'conv': {
      const p = w.conv.get(o.name)!;
      const weight = g.constant(`${o.name}_weight`, p.data, p.shape);
      g.node(
        'Conv',
        [o.input, weight],
        [o.output],
        [
          { name: 'kernel_shape', ints: [o.kernel, o.kernel] },
          { name: 'strides', ints: [o.stride, o.stride] },
          { name: 'pads', ints: [o.pad, o.pad, o.pad, o.pad] },
        ],
      );
      return;
    }
    case 'maxpool':
      g.node(
        'MaxPool',
        [o.input],
        [o.output],
        [
          { name: 'kernel_shape', ints: [o.kernel, o.kernel] },
          { name: 'strides', ints: [o.stride, o.stride] },
          { name: 'pads', ints: [o.pad, o.pad, o.pad, o.pad] },
        ],
      );
      return;
    case 'relu':
      g.node('Relu', [o.input], [o.output]);
      return;
    case 'add':
      g.node('Add', o.inputs, [o.output]);
      return;
  }
}

/** The serialised ONNX model whose outputs are `layers` (NHWC) and, if `pooledLayer`, ONNX_POOLED. */
export function resnet50Onnx(weights: Resnet50Weights, layers: string[], pooledLayer?: string): Uint8Array {
  const g = new GraphBuilder();
  const { mean, std } = IMAGENET_NORMALIZATION;
  // NHWC 0..255 -> normalised NCHW, the network's input.
  g.node('Transpose', [ONNX_PIXELS], ['pixels_nchw'], [{ name: 'perm', ints: [0, 3, 1, 2] }]);
  const scale = g.constant(
    'norm_scale',
    Float32Array.from(std, (s) => 1 / s),
    [1, 3, 1, 1],
  );
  const offset = g.constant(
    'norm_offset',
    Float32Array.from(mean, (m, i) => -m / std[i]!),
    [1, 3, 1, 1],
  );
  g.node('Mul', ['pixels_nchw', scale], ['pixels_scaled']);
  g.node('Add', ['pixels_scaled', offset], [NET_INPUT]);
  const wanted = [...new Set([...layers, ...(pooledLayer ? [pooledLayer] : [])])];
  for (const o of opsFor(wanted)) emit(g, o, weights);
  const outputs: onnxProto.onnx.IValueInfoProto[] = [];
  for (const name of layers) {
    g.node('Transpose', [name], [onnxOutputName(name)], [{ name: 'perm', ints: [0, 2, 3, 1] }]);
    outputs.push(floatInfo(onnxOutputName(name), ['n', 'h', 'w', 'c']));
  }
  if (pooledLayer) {
    const t = pooledLayer;
    g.node(
      'ReduceMean',
      [t],
      ['pool_mean_k'],
      [
        { name: 'axes', ints: [2, 3] },
        { name: 'keepdims', i: 1 },
      ],
    );
    g.node('Sub', [t, 'pool_mean_k'], ['pool_dev']);
    g.node('Mul', ['pool_dev', 'pool_dev'], ['pool_dev2']);
    g.node(
      'ReduceMean',
      ['pool_dev2'],
      ['pool_var'],
      [
        { name: 'axes', ints: [2, 3] },
        { name: 'keepdims', i: 0 },
      ],
    );
    g.node('Sqrt', ['pool_var'], ['pool_std']);
    g.node('Flatten', ['pool_mean_k'], ['pool_mean'], [{ name: 'axis', i: 1 }]);
    g.node('Concat', ['pool_mean', 'pool_std'], [ONNX_POOLED], [{ name: 'axis', i: 1 }]);
    outputs.push(floatInfo(ONNX_POOLED, ['n', 'c2']));
  }
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: 'swan-inspector',
    graph: {
      name: 'resnet50_v2_stages_1_3',
      node: g.nodes,
      initializer: g.initializers,
      input: [floatInfo(ONNX_PIXELS, ['n', 'h', 'w', 3])],
      output: outputs,
    },
  });
  return onnx.ModelProto.encode(model).finish();
}
