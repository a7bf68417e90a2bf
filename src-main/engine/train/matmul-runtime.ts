/**
 * The matrix products of the written-out head step (fast-step.ts) on the fastest runtime at
 * hand: onnxruntime-node's CPU GEMM (native SIMD, one thread) when the optional package is
 * installed, which costs about a third of TF.js wasm's CPU on the step's shapes
 * (docs/benchmarks/speed.md), else TF.js. Both compute in float32; they differ only in
 * rounding. SWAN_HEAD_MATMUL=tfjs|onnxruntime forces one (benchmarks compare them).
 */
import * as tf from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';
import { trainingThreads, type ProductThreads } from './product-threads';

/** a [m, k] @ b [k, n], row-major; into `out` ([m, n]) when given, which is then returned. */
export type MatMulArgs = [
  a: Float32Array,
  m: number,
  k: number,
  b: Float32Array,
  n: number,
  out?: Float32Array,
];
export type MatMulFn = (...args: MatMulArgs) => Promise<Float32Array>;

export type MatMulRuntime = 'tfjs' | 'onnxruntime';

export interface HeadMatMul {
  runtime: MatMulRuntime;
  matMul: MatMulFn;
  /** a^T @ b for `a` stored [k, m] (same arguments as matMul); absent: transpose first. */
  matMulTA?: MatMulFn;
  gathered: GatheredProducts;
}

/**
 * Products of a row-gathered matrix A = rows idx of `a` [*, w], taken g at a time as one row of
 * A [m, g*w] (m = idx.length / g): im2col as a gather, done in native code and never copied
 * back to JavaScript.
 */
export interface GatheredProducts {
  /** A @ b, b [g*w, n], into out [m, n]. */
  times(
    a: Float32Array,
    w: number,
    idx: Int32Array,
    g: number,
    b: Float32Array,
    n: number,
    out: Float32Array,
  ): Promise<Float32Array>;
  /** left [p, m] @ A into outL [p, g*w], and A @ right [g*w, q] into outR [m, q]. */
  both(
    a: Float32Array,
    w: number,
    idx: Int32Array,
    g: number,
    left: Float32Array,
    p: number,
    right: Float32Array,
    q: number,
    outL: Float32Array,
    outR: Float32Array,
  ): Promise<void>;
}

export const tfjsMatMul: MatMulFn = async (...args) => tfjsMatMulSync(...args);

/** tfjsMatMul without the promise, for callers that stay synchronous (scoring). */
export function tfjsMatMulSync(...[a, m, k, b, n, out]: MatMulArgs): Float32Array {
  const ta = tf.tensor2d(a, [m, k]);
  const tb = tf.tensor2d(b, [k, n]);
  const tc = tf.matMul(ta, tb);
  // Not returned through tf.tidy: it would walk the typed array element by element.
  const c = tc.dataSync() as Float32Array;
  tf.dispose([ta, tb, tc]);
  if (!out) return c;
  out.set(c);
  return out;
}

/** Rows idx of a [*, w], one after the other, into out [idx.length * w]. */
function gatherRowsInto(a: Float32Array, w: number, idx: Int32Array, out: Float32Array): Float32Array {
  for (let j = 0; j < idx.length; j++) {
    const s = idx[j] * w;
    const o = j * w;
    for (let ch = 0; ch < w; ch++) out[o + ch] = a[s + ch];
  }
  return out;
}

let gatherScratch = new Float32Array(0);

/** Rows idx of a gathered into a scratch array kept between calls (the step's are several MB). */
function gatheredRows(a: Float32Array, w: number, idx: Int32Array): Float32Array {
  if (gatherScratch.length < idx.length * w) gatherScratch = new Float32Array(idx.length * w);
  return gatherRowsInto(a, w, idx, gatherScratch.subarray(0, idx.length * w));
}

/** GatheredProducts on TF.js: the gather in JavaScript, then tfjsMatMul. */
export const tfjsGathered: GatheredProducts = {
  async times(a, w, idx, g, b, n, out) {
    const A = gatheredRows(a, w, idx);
    return tfjsMatMulSync(A, idx.length / g, g * w, b, n, out);
  },
  async both(a, w, idx, g, left, p, right, q, outL, outR) {
    const A = gatheredRows(a, w, idx);
    const m = idx.length / g;
    tfjsMatMulSync(left, p, m, A, g * w, outL);
    tfjsMatMulSync(A, m, g * w, right, q, outR);
  },
};

type OnnxNode = { opType: string; input: string[]; output: string[]; name: string; attribute?: object[] };

/** A value of the products' graphs: every dimension free (float32 unless said). */
function valueInfo(
  name: string,
  dims: string[],
  elemType: number = onnxProto.onnx.TensorProto.DataType.FLOAT,
) {
  return { name, type: { tensorType: { elemType, shape: { dim: dims.map((d) => ({ dimParam: d })) } } } };
}

/** One of the products' graphs, serialised. */
function encodeGraph(
  name: string,
  node: OnnxNode[],
  input: ReturnType<typeof valueInfo>[],
  output: ReturnType<typeof valueInfo>[],
): Uint8Array {
  const { onnx } = onnxProto;
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 13 }],
      producerName: 'swan-inspector',
      graph: { name, node, input, output },
    }),
  ).finish();
}

/** A one-node ONNX graph: c = a @ b (MatMul), or a^T @ b (Gemm transA), every dimension free. */
function matMulGraph(transposeA: boolean): Uint8Array {
  const node: OnnxNode = transposeA
    ? {
        opType: 'Gemm',
        input: ['a', 'b'],
        output: ['c'],
        name: 'c',
        attribute: [{ name: 'transA', type: onnxProto.onnx.AttributeProto.AttributeType.INT, i: 1 }],
      }
    : { opType: 'MatMul', input: ['a', 'b'], output: ['c'], name: 'c' };
  return encodeGraph(
    'head_matmul',
    [node],
    [valueInfo('a', transposeA ? ['k', 'm'] : ['m', 'k']), valueInfo('b', ['k', 'n'])],
    [valueInfo('c', ['m', 'n'])],
  );
}

/**
 * A = reshape(gather(a, idx), [-1, g*w]) (shape fed as an input), then A @ b (outputs ['c']) or
 * left @ A and A @ right (outputs ['l', 'r']).
 */
function gatheredGraph(both: boolean): Uint8Array {
  const T = onnxProto.onnx.TensorProto.DataType;
  const node: OnnxNode[] = [
    { opType: 'Gather', input: ['a', 'idx'], output: ['rows'], name: 'rows' },
    { opType: 'Reshape', input: ['rows', 'shape'], output: ['A'], name: 'A' },
    ...(both
      ? [
          { opType: 'MatMul', input: ['left', 'A'], output: ['l'], name: 'l' },
          { opType: 'MatMul', input: ['A', 'right'], output: ['r'], name: 'r' },
        ]
      : [{ opType: 'MatMul', input: ['A', 'b'], output: ['c'], name: 'c' }]),
  ];
  const input = [
    valueInfo('a', ['na', 'w']),
    valueInfo('idx', ['ni'], T.INT32),
    valueInfo('shape', ['two'], T.INT64),
    ...(both
      ? [valueInfo('left', ['p', 'm']), valueInfo('right', ['gw', 'q'])]
      : [valueInfo('b', ['gw', 'n'])]),
  ];
  const output = both
    ? [valueInfo('l', ['p', 'gw']), valueInfo('r', ['m', 'q'])]
    : [valueInfo('c', ['m', 'n'])];
  return encodeGraph(both ? 'gathered_both' : 'gathered_times', node, input, output);
}

async function onnxMatMul(threads: number): Promise<Products> {
  const mod = (await import('onnxruntime-node')) as typeof import('onnxruntime-node') & {
    default?: typeof import('onnxruntime-node');
  };
  const ort = mod.InferenceSession ? mod : mod.default!;
  // Without spinning: a spinning pool thread between products takes the core the step's own loops need.
  const opts = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential' as const,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
  const plain = await ort.InferenceSession.create(matMulGraph(false), opts);
  const transposed = await ort.InferenceSession.create(matMulGraph(true), opts);
  // Into the caller's array when given: no output allocated per product.
  const product =
    (session: typeof plain, transposeA: boolean): MatMulFn =>
    async (a, m, k, b, n, out) => {
      const feeds = {
        a: new ort.Tensor('float32', a, transposeA ? [k, m] : [m, k]),
        b: new ort.Tensor('float32', b, [k, n]),
      };
      if (!out) return (await session.run(feeds)).c.data as Float32Array;
      await session.run(feeds, { c: new ort.Tensor('float32', out, [m, n]) });
      return out;
    };
  const times = await ort.InferenceSession.create(gatheredGraph(false), opts);
  const both = await ort.InferenceSession.create(gatheredGraph(true), opts);
  const f32 = (data: Float32Array, dims: number[]) => new ort.Tensor('float32', data, dims);
  const gatherFeeds = (a: Float32Array, w: number, idx: Int32Array, g: number) => ({
    a: f32(a, [a.length / w, w]),
    idx: new ort.Tensor('int32', idx, [idx.length]),
    shape: new ort.Tensor('int64', BigInt64Array.of(-1n, BigInt(g * w)), [2]),
  });
  const gathered: GatheredProducts = {
    async times(a, w, idx, g, b, n, out) {
      const m = idx.length / g;
      await times.run({ ...gatherFeeds(a, w, idx, g), b: f32(b, [g * w, n]) }, { c: f32(out, [m, n]) });
      return out;
    },
    async both(a, w, idx, g, left, p, right, q, outL, outR) {
      const m = idx.length / g;
      await both.run(
        { ...gatherFeeds(a, w, idx, g), left: f32(left, [p, m]), right: f32(right, [g * w, q]) },
        { l: f32(outL, [p, g * w]), r: f32(outR, [m, q]) },
      );
    },
  };
  return { matMul: product(plain, false), matMulTA: product(transposed, true), gathered };
}

/** Loads the products' runtime now (a warm engine), so the first training step does not wait for it. */
export async function warmTraining(): Promise<void> {
  await headMatMul(undefined, trainingThreads());
}

type Products = Pick<HeadMatMul, 'matMul' | 'matMulTA' | 'gathered'>;
const opened = new Map<number, Promise<Products>>();

function onnxProducts(threads: number): Promise<Products> {
  let products = opened.get(threads);
  if (!products) opened.set(threads, (products = onnxMatMul(threads)));
  return products;
}

/**
 * The products' runtime: `prefer`, else SWAN_HEAD_MATMUL, else onnxruntime when it loads. A
 * forced onnxruntime that cannot load is an error; the automatic choice falls back to TF.js.
 * `threads`: onnxruntime's intra-op threads (product-threads.ts).
 */
export async function headMatMul(prefer?: MatMulRuntime, threads: ProductThreads = 1): Promise<HeadMatMul> {
  const env = process.env.SWAN_HEAD_MATMUL;
  const wanted = prefer ?? (env === 'tfjs' || env === 'onnxruntime' ? env : undefined);
  if (wanted === 'tfjs') return { runtime: 'tfjs', matMul: tfjsMatMul, gathered: tfjsGathered };
  try {
    return { runtime: 'onnxruntime', ...(await onnxProducts(threads)) };
  } catch (err) {
    if (wanted === 'onnxruntime') throw err;
    return { runtime: 'tfjs', matMul: tfjsMatMul, gathered: tfjsGathered };
  }
}
