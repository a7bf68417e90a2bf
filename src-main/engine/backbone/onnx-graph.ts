/**
 * Building blocks of the backbones' ONNX graphs (resnet50-onnx.ts, fused-onnx.ts): a graph
 * builder, and the part every backbone graph shares. Such a graph takes raw NHWC RGB (0..255),
 * normalises inside, and returns the asked layers NHWC plus, when a pooled layer is given, its
 * per-channel mean then standard deviation [N, 2C] (as backbone.ts computes them).
 */
import onnxProto from 'onnx-proto';
import type { Normalization } from './normalize';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const OPSET = 13;

export const ONNX_PIXELS = 'pixels';
export const ONNX_POOLED = 'pooled';
/** Name of the graph output carrying layer `name` (NHWC). */
export const onnxOutputName = (name: string): string => `out_${name}`;

export type Attr = { name: string; ints?: number[]; i?: number; f?: number; s?: string };

function attr(a: Attr): onnxProto.onnx.IAttributeProto {
  const A = onnx.AttributeProto.AttributeType;
  if (a.ints) return { name: a.name, type: A.INTS, ints: a.ints };
  if (a.f !== undefined) return { name: a.name, type: A.FLOAT, f: a.f };
  if (a.s !== undefined) return { name: a.name, type: A.STRING, s: new TextEncoder().encode(a.s) };
  return { name: a.name, type: A.INT, i: a.i };
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

export class GraphBuilder {
  readonly nodes: onnxProto.onnx.INodeProto[] = [];
  readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];

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

  int64Constant(name: string, data: number[]): string {
    this.initializers.push({
      name,
      dims: [data.length],
      dataType: onnx.TensorProto.DataType.INT64,
      rawData: new Uint8Array(BigInt64Array.from(data, (v) => BigInt(v)).buffer),
    });
    return name;
  }

  /**
   * ONNX_PIXELS (NHWC, 0..255) normalised and transposed to NCHW as value `name`, the
   * network's input.
   */
  normalizedInput(n: Normalization, name: string): void {
    const { mean, std } = n;
    this.node('Transpose', [ONNX_PIXELS], ['pixels_nchw'], [{ name: 'perm', ints: [0, 3, 1, 2] }]);
    const scale = this.constant(
      'norm_scale',
      Float32Array.from(std, (s) => 1 / s),
      [1, 3, 1, 1],
    );
    const offset = this.constant(
      'norm_offset',
      Float32Array.from(mean, (m, i) => -m / std[i]!),
      [1, 3, 1, 1],
    );
    this.node('Mul', ['pixels_nchw', scale], ['pixels_scaled']);
    this.node('Add', ['pixels_scaled', offset], [name]);
  }

  /** Graph output onnxOutputName(layer): NCHW value `value` back to NHWC. */
  nhwcOutput(layer: string, value: string): void {
    this.node('Transpose', [value], [onnxOutputName(layer)], [{ name: 'perm', ints: [0, 2, 3, 1] }]);
    this.outputs.push(floatInfo(onnxOutputName(layer), ['n', 'h', 'w', 'c']));
  }

  /** Graph output ONNX_POOLED: per image the channel means then standard deviations of NCHW `value`. */
  pooledOutput(value: string): void {
    const t = value;
    this.node(
      'ReduceMean',
      [t],
      ['pool_mean_k'],
      [
        { name: 'axes', ints: [2, 3] },
        { name: 'keepdims', i: 1 },
      ],
    );
    this.node('Sub', [t, 'pool_mean_k'], ['pool_dev']);
    this.node('Mul', ['pool_dev', 'pool_dev'], ['pool_dev2']);
    this.node(
      'ReduceMean',
      ['pool_dev2'],
      ['pool_var'],
      [
        { name: 'axes', ints: [2, 3] },
        { name: 'keepdims', i: 0 },
      ],
    );
    this.node('Sqrt', ['pool_var'], ['pool_std']);
    this.node('Flatten', ['pool_mean_k'], ['pool_mean'], [{ name: 'axis', i: 1 }]);
    this.node('Concat', ['pool_mean', 'pool_std'], [ONNX_POOLED], [{ name: 'axis', i: 1 }]);
    this.outputs.push(floatInfo(ONNX_POOLED, ['n', 'c2']));
  }

  /** The serialised model, input ONNX_PIXELS [n, h, w, 3]. */
  encode(graphName: string): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: '', version: OPSET }],
      producerName: 'swan-inspector',
      graph: {
        name: graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: [floatInfo(ONNX_PIXELS, ['n', 'h', 'w', 3])],
        output: this.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
