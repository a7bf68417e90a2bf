/**
 * ResNet-50 v2 (pre-activation, MXNet Gluon naming), stem + stages 1-3, described once as a
 * list of ops over named values, so that the TF.js model (resnet50.ts) and the ONNX graph
 * (onnx/) are built from the same description. Weights: one `.npy` per tensor in
 * `<dir>/weights/resnetv24_<layer>_<param>.npy`, convolutions OIHW, no biases; BN eps 1e-5.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { EngineError } from '../types';
import { readNpyFloat32 } from './npy';

export const RESNET50_ID = 'resnet50_v2';
export const RESNET50_DIR_NAME = 'resnet50_v2_imagenet';
export const RESNET50_BN_EPSILON = 1e-5;

/**
 * Values a consumer may ask for: the stage outputs (pre-activation sums, as in the reference
 * outputs) and their post-activation versions relu(BN(x)) with the next stage's first BN.
 * At 224: stage1 56x56x256, stage2 28x28x512, stage3 14x14x1024. stage3_pool2: stage3
 * averaged over 2x2 cells (an odd side's last row and column averaged over the cells there),
 * 7x7x1024 at 224, MobileNet's grid: a fifth of stage3's values for the heads to read.
 */
export const RESNET50_LAYERS = [
  'stage1',
  'stage2',
  'stage3',
  'stage1_relu',
  'stage2_relu',
  'stage3_relu',
  'stage3_pool2',
] as const;
export type Resnet50Layer = (typeof RESNET50_LAYERS)[number];

export type NetOp =
  | { op: 'bn'; name: string; input: string; output: string }
  | { op: 'conv'; name: string; input: string; output: string; kernel: number; stride: number; pad: number }
  | { op: 'relu'; input: string; output: string }
  | { op: 'maxpool'; input: string; output: string; kernel: number; stride: number; pad: number }
  /** Mean over kernel x kernel windows at stride kernel; a window past the edge averages the cells it covers. */
  | { op: 'avgpool'; input: string; output: string; kernel: number }
  | { op: 'add'; inputs: [string, string]; output: string };

export const NET_INPUT = 'input';
const P = 'resnetv24_';
const UNITS = [3, 4, 6];

/** The ops in execution order; every op's output names a distinct value. */
export function resnet50Ops(): NetOp[] {
  const ops: NetOp[] = [
    { op: 'bn', name: `${P}batchnorm0`, input: NET_INPUT, output: 'bn_input' },
    { op: 'conv', name: `${P}conv0`, input: 'bn_input', output: 'conv0', kernel: 7, stride: 2, pad: 3 },
    { op: 'bn', name: `${P}batchnorm1`, input: 'conv0', output: 'bn1' },
    { op: 'relu', input: 'bn1', output: 'relu0' },
    { op: 'maxpool', input: 'relu0', output: 'pool0', kernel: 3, stride: 2, pad: 1 },
  ];
  let x = 'pool0';
  UNITS.forEach((units, si) => {
    const s = si + 1;
    const prefix = `${P}stage${s}_`;
    let c = 0;
    for (let u = 0; u < units; u++) {
      const b = 3 * u;
      const stride = u === 0 && s > 1 ? 2 : 1;
      const id = `s${s}u${u}`;
      // The first unit's pre-activation of stage s > 1 is the post-activation of stage s - 1.
      const a = u === 0 && s > 1 ? `stage${s - 1}_relu` : `${id}_a`;
      ops.push({ op: 'bn', name: `${prefix}batchnorm${b}`, input: x, output: `${id}_bn0` });
      ops.push({ op: 'relu', input: `${id}_bn0`, output: a });
      ops.push({
        op: 'conv',
        name: `${prefix}conv${c}`,
        input: a,
        output: `${id}_conv0`,
        kernel: 1,
        stride: 1,
        pad: 0,
      });
      ops.push({ op: 'bn', name: `${prefix}batchnorm${b + 1}`, input: `${id}_conv0`, output: `${id}_bn1` });
      ops.push({ op: 'relu', input: `${id}_bn1`, output: `${id}_relu1` });
      ops.push({
        op: 'conv',
        name: `${prefix}conv${c + 1}`,
        input: `${id}_relu1`,
        output: `${id}_conv1`,
        kernel: 3,
        stride,
        pad: 1,
      });
      ops.push({ op: 'bn', name: `${prefix}batchnorm${b + 2}`, input: `${id}_conv1`, output: `${id}_bn2` });
      ops.push({ op: 'relu', input: `${id}_bn2`, output: `${id}_relu2` });
      ops.push({
        op: 'conv',
        name: `${prefix}conv${c + 2}`,
        input: `${id}_relu2`,
        output: `${id}_conv2`,
        kernel: 1,
        stride: 1,
        pad: 0,
      });
      let shortcut = x;
      if (u === 0) {
        shortcut = `${id}_down`;
        ops.push({
          op: 'conv',
          name: `${prefix}conv${c + 3}`,
          input: a,
          output: shortcut,
          kernel: 1,
          stride,
          pad: 0,
        });
      }
      const out = u === units - 1 ? `stage${s}` : `${id}_out`;
      ops.push({ op: 'add', inputs: [`${id}_conv2`, shortcut], output: out });
      c += u === 0 ? 4 : 3;
      x = out;
    }
  });
  ops.push({ op: 'bn', name: `${P}stage4_batchnorm0`, input: 'stage3', output: 'stage3_bn' });
  ops.push({ op: 'relu', input: 'stage3_bn', output: 'stage3_relu' });
  ops.push({ op: 'avgpool', input: 'stage3', output: 'stage3_pool2', kernel: 2 });
  return ops;
}

/** The ops needed for `outputs` (the ancestors), in execution order. */
export function opsFor(outputs: string[]): NetOp[] {
  const all = resnet50Ops();
  const producer = new Map(all.map((o) => [o.output, o] as const));
  for (const name of outputs) {
    if (!producer.has(name)) {
      throw new EngineError(`ResNet-50 v2 has no layer '${name}' (known: ${RESNET50_LAYERS.join(', ')})`);
    }
  }
  const needed = new Set<string>();
  const stack = [...outputs];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (needed.has(n) || n === NET_INPUT) continue;
    needed.add(n);
    const o = producer.get(n)!;
    stack.push(...(o.op === 'add' ? o.inputs : [o.input]));
  }
  return all.filter((o) => needed.has(o.output));
}

export interface BnParams {
  gamma: Float32Array;
  beta: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
}

export interface ConvParams {
  /** OIHW. */
  shape: [number, number, number, number];
  data: Float32Array;
}

export interface Resnet50Weights {
  bn: Map<string, BnParams>;
  conv: Map<string, ConvParams>;
}

export function weightsDir(modelDir: string): string {
  return path.join(modelDir, 'weights');
}

/** Throws an EngineError naming the folder when it does not look like the weight folder. */
export function assertResnet50Dir(modelDir: string): void {
  const dir = weightsDir(modelDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new EngineError(
      `Backbone ${RESNET50_ID}: weight folder not found (looked in ${path.resolve(dir)}; ` +
        `set SWAN_RESNET50_DIR to the folder holding weights/)`,
    );
  }
}

/** Reads every tensor `ops` use; missing or misshapen files are EngineErrors naming the file. */
export async function loadResnet50Weights(
  modelDir: string,
  ops: NetOp[] = resnet50Ops(),
): Promise<Resnet50Weights> {
  assertResnet50Dir(modelDir);
  const dir = weightsDir(modelDir);
  const file = (n: string) => path.join(dir, `${n}.npy`);
  const bn = new Map<string, BnParams>();
  const conv = new Map<string, ConvParams>();
  // Channels flowing along each value, so a weight of the wrong shape is caught at load.
  const channels = new Map<string, number>([[NET_INPUT, 3]]);
  for (const o of ops) {
    if (o.op === 'bn') {
      const c = channels.get(o.input)!;
      const [gamma, beta, mean, variance] = await Promise.all(
        ['gamma', 'beta', 'running_mean', 'running_var'].map((p) =>
          readNpyFloat32(file(`${o.name}_${p}`), [c]),
        ),
      );
      bn.set(o.name, { gamma: gamma!.data, beta: beta!.data, mean: mean!.data, variance: variance!.data });
      channels.set(o.output, c);
    } else if (o.op === 'conv') {
      const w = await readNpyFloat32(file(`${o.name}_weight`));
      const [out, inC, kh, kw] = w.shape;
      if (w.shape.length !== 4 || inC !== channels.get(o.input) || kh !== o.kernel || kw !== o.kernel) {
        throw new EngineError(
          `${file(`${o.name}_weight`)} has shape ${w.shape.join('x')}, expected Ox${channels.get(o.input)}x${o.kernel}x${o.kernel}`,
        );
      }
      conv.set(o.name, { shape: [out!, inC!, kh!, kw!], data: w.data });
      channels.set(o.output, out!);
    } else if (o.op === 'add') {
      const [c1, c2] = o.inputs.map((i) => channels.get(i));
      if (c1 !== c2) throw new EngineError(`ResNet-50 weights: ${o.output} adds ${c1} and ${c2} channels`);
      channels.set(o.output, c1!);
    } else {
      channels.set(o.output, channels.get(o.input)!);
    }
  }
  return { bn, conv };
}

/** BatchNorm as y = x * scale + shift, per channel. */
export function bnAffine(p: BnParams): { scale: Float32Array; shift: Float32Array } {
  const scale = new Float32Array(p.gamma.length);
  const shift = new Float32Array(p.gamma.length);
  for (let i = 0; i < scale.length; i++) {
    scale[i] = p.gamma[i]! / Math.sqrt(p.variance[i]! + RESNET50_BN_EPSILON);
    shift[i] = p.beta[i]! - p.mean[i]! * scale[i]!;
  }
  return { scale, shift };
}

/** A short identity of the weight files (names and contents), for feature-cache keys. */
export async function resnet50WeightsIdentity(modelDir: string): Promise<string> {
  assertResnet50Dir(modelDir);
  const dir = weightsDir(modelDir);
  const hash = createHash('sha256');
  for (const f of readdirSync(dir)
    .filter((n) => n.endsWith('.npy'))
    .sort()) {
    hash.update(f);
    hash.update(await readFile(path.join(dir, f)));
  }
  return hash.digest('hex').slice(0, 16);
}
