/**
 * The matrix products of the written-out head step (fast-step.ts) on the fastest runtime at
 * hand: onnxruntime-node's CPU GEMM (native SIMD, one thread) when the optional package is
 * installed, which costs about a third of TF.js wasm's CPU on the step's shapes
 * (docs/benchmarks/speed.md), else TF.js. Both compute in float32; they differ only in
 * rounding. SWAN_HEAD_MATMUL=tfjs|onnxruntime forces one (benchmarks compare them).
 */
import * as tf from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';

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

/** A one-node ONNX graph: c = a @ b (MatMul), or a^T @ b (Gemm transA), every dimension free. */
function matMulGraph(transposeA: boolean): Uint8Array {
  const { onnx } = onnxProto;
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const info = (name: string, dims: string[]) => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => ({ dimParam: d })) } } },
  });
  const node = transposeA
    ? {
        opType: 'Gemm',
        input: ['a', 'b'],
        output: ['c'],
        name: 'c',
        attribute: [{ name: 'transA', type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
      }
    : { opType: 'MatMul', input: ['a', 'b'], output: ['c'], name: 'c' };
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 13 }],
      producerName: 'swan-inspector',
      graph: {
        name: 'head_matmul',
        node: [node],
        input: [info('a', transposeA ? ['k', 'm'] : ['m', 'k']), info('b', ['k', 'n'])],
        output: [info('c', ['m', 'n'])],
      },
    }),
  ).finish();
}

async function onnxMatMul(): Promise<Pick<HeadMatMul, 'matMul' | 'matMulTA'>> {
  const mod = (await import('onnxruntime-node')) as typeof import('onnxruntime-node') & {
    default?: typeof import('onnxruntime-node');
  };
  const ort = mod.InferenceSession ? mod : mod.default!;
  // One thread: the feature workers and other jobs share the cores.
  const opts = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' as const };
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
  return { matMul: product(plain, false), matMulTA: product(transposed, true) };
}

/** Loads the products' runtime now (a warm engine), so the first training step does not wait for it. */
export async function warmTraining(): Promise<void> {
  await headMatMul();
}

let opened: Promise<Pick<HeadMatMul, 'matMul' | 'matMulTA'>> | null = null;

/**
 * The products' runtime: `prefer`, else SWAN_HEAD_MATMUL, else onnxruntime when it loads. A
 * forced onnxruntime that cannot load is an error; the automatic choice falls back to TF.js.
 */
export async function headMatMul(prefer?: MatMulRuntime): Promise<HeadMatMul> {
  const env = process.env.SWAN_HEAD_MATMUL;
  const wanted = prefer ?? (env === 'tfjs' || env === 'onnxruntime' ? env : undefined);
  if (wanted === 'tfjs') return { runtime: 'tfjs', matMul: tfjsMatMul };
  opened ??= onnxMatMul();
  try {
    return { runtime: 'onnxruntime', ...(await opened) };
  } catch (err) {
    if (wanted === 'onnxruntime') throw err;
    return { runtime: 'tfjs', matMul: tfjsMatMul };
  }
}
