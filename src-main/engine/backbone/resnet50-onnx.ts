/**
 * The ONNX graph of ResNet-50 v2 stages 1-3, built from the same op list as the TF.js model
 * (resnet50-net.ts) and the `.npy` weights, for onnxruntime-node (inputs and outputs as
 * onnx-graph.ts describes). BatchNorm stays a BatchNormalization node: onnxruntime folds it into the preceding
 * convolution itself.
 */
import { GraphBuilder } from './onnx-graph';
import { IMAGENET_NORMALIZATION } from './normalize';
import { type NetOp, NET_INPUT, opsFor, RESNET50_BN_EPSILON, type Resnet50Weights } from './resnet50-net';

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
    case 'avgpool':
      // Padding after the last cell, left out of the mean (count_include_pad 0): TF's 'same'.
      g.node(
        'AveragePool',
        [o.input],
        [o.output],
        [
          { name: 'kernel_shape', ints: [o.kernel, o.kernel] },
          { name: 'strides', ints: [o.kernel, o.kernel] },
          { name: 'pads', ints: [0, 0, o.kernel - 1, o.kernel - 1] },
          { name: 'count_include_pad', i: 0 },
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
  g.normalizedInput(IMAGENET_NORMALIZATION, NET_INPUT);
  const wanted = [...new Set([...layers, ...(pooledLayer ? [pooledLayer] : [])])];
  for (const o of opsFor(wanted)) emit(g, o, weights);
  for (const name of layers) g.nhwcOutput(name, name);
  if (pooledLayer) g.pooledOutput(pooledLayer);
  return g.encode('resnet50_v2_stages_1_3');
}
