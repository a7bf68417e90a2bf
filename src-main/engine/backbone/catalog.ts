/**
 * What each backbone's feature layers give, without loading the network (the main process
 * checks imported model files with it): channels and total stride per layer name. The
 * feature map of a level is ceil(level side / stride) on each side (measured: MobileNet at
 * 224 gives 7x7 for level 0 and 4x4 for the 112-pixel level 1).
 * A backbone missing here is not checked by shape at import; add its layers to check it.
 */
import { levelDims } from '../features/geometry';

export interface LayerInfo {
  channels: number;
  stride: number;
}

function mobilenetLayers(alpha: number): Record<string, LayerInfo> {
  // Pointwise blocks 1..13 of MobileNetV1: base channels and the stride after each block.
  const blocks: [number, number][] = [
    [64, 2],
    [128, 4],
    [128, 4],
    [256, 8],
    [256, 8],
    [512, 16],
    [512, 16],
    [512, 16],
    [512, 16],
    [512, 16],
    [512, 16],
    [1024, 32],
    [1024, 32],
  ];
  const out: Record<string, LayerInfo> = {};
  blocks.forEach(([c, stride], i) => {
    out[`conv_pw_${i + 1}_relu`] = { channels: Math.round(c * alpha), stride };
  });
  return out;
}

export const BACKBONE_LAYERS: Record<string, Record<string, LayerInfo>> = {
  'mobilenet_v1_0.75': mobilenetLayers(0.75),
  // Stage outputs, their post-activation versions and stage3's 2x2 mean (resnet50-net.ts RESNET50_LAYERS).
  resnet50_v2: {
    ...Object.fromEntries(
      (
        [
          ['stage1', 256, 4],
          ['stage2', 512, 8],
          ['stage3', 1024, 16],
        ] as const
      ).flatMap(([name, channels, stride]) => [
        [name, { channels, stride }],
        [`${name}_relu`, { channels, stride }],
      ]),
    ),
    stage3_pool2: { channels: 1024, stride: 32 },
  },
  resnet18: {
    layer1: { channels: 64, stride: 4 },
    layer2: { channels: 128, stride: 8 },
    layer3: { channels: 256, stride: 16 },
    layer4: { channels: 512, stride: 32 },
  },
};

/** The feature map shape per level a backbone gives, or why it cannot (unknown layer). */
export function expectedLevelShapes(backbone: {
  id: string;
  inputSize: number;
  inputShape?: { height: number; width: number };
  featureLayer: string;
  levels: number;
}): { shapes: { h: number; w: number; c: number }[] } | { problem: string } | null {
  const layers = BACKBONE_LAYERS[backbone.id];
  if (!layers) return null;
  const layer = layers[backbone.featureLayer];
  if (!layer) {
    const names = Object.keys(layers);
    return {
      problem: `backbone.featureLayer: '${backbone.featureLayer}' is not a layer of backbone '${backbone.id}' (its layers: ${names[0]} ... ${names[names.length - 1]})`,
    };
  }
  const shapes = Array.from({ length: backbone.levels }, (_, l) => {
    const { height, width } = levelDims(backbone, l);
    return { h: Math.ceil(height / layer.stride), w: Math.ceil(width / layer.stride), c: layer.channels };
  });
  return { shapes };
}
