import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  forwardLevel,
  headTensors,
  disposeHeadTensors,
  readWeights,
} from '../../../src-main/engine/heads/forward';
import { initWeights } from '../../../src-main/engine/heads/init';
import { im2col3x3, matMul, matMulConstInput, sliceColumns } from '../../../src-main/engine/heads/matmul';
import { Rng } from '../../../src-main/engine/util/rng';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-4) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(tol);
};

describe('wasm-friendly building blocks', () => {
  it('im2col + matMul equals a 3x3 conv with padding 1', () => {
    const x = tf.randomNormal([2, 4, 5, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const filter = tf.randomNormal([3, 3, 3, 6], 0, 1, 'float32', 2) as tf.Tensor4D;
    const ref = tf.conv2d(x, filter, 1, 'same');
    const mine = tf.matMul(im2col3x3(x), tf.reshape(filter, [27, 6]));
    close(mine.dataSync(), tf.reshape(ref, [40, 6]).dataSync());
  });

  it('custom matMuls give the same values and gradients as tf.matMul', () => {
    const a = tf.randomNormal([5, 4], 0, 1, 'float32', 3) as tf.Tensor2D;
    const b = tf.randomNormal([4, 3], 0, 1, 'float32', 4) as tf.Tensor2D;
    const loss = (f: (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor) => (x: tf.Tensor, y: tf.Tensor) =>
      tf.sum(tf.square(f(x as tf.Tensor2D, y as tf.Tensor2D)));
    const [ga, gb] = tf.grads(loss((x, y) => tf.matMul(x, y)))([a, b]);
    const [ma, mb] = tf.grads(loss(matMul))([a, b]);
    close(ma.dataSync(), ga.dataSync());
    close(mb.dataSync(), gb.dataSync());
    const gOnlyB = tf.grad((y: tf.Tensor) => tf.sum(tf.square(matMulConstInput(a, y as tf.Tensor2D))))(b);
    close(gOnlyB.dataSync(), gb.dataSync());
  });

  it('sliceColumns selects columns and routes the gradient back to them only', () => {
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    expect(Array.from(sliceColumns(x, 1, 2).dataSync())).toEqual([2, 3, 5, 6]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(sliceColumns(t as tf.Tensor2D, 1, 2)))(x);
    expect(Array.from(g.dataSync())).toEqual([0, 1, 1, 0, 1, 1]);
  });
});

describe('forwardLevel', () => {
  const c = 8;
  const rng = new Rng(7);
  const weights = initWeights({ channels: c, reduceTo: 4, width: 5, hidden: 6 }, rng);

  it('gives |.| patch maps, a normality score per image, and matches a direct computation', () => {
    const t = headTensors(weights, false);
    const x = tf.randomUniform([3, 4, 4, c], 0, 1, 'float32', 5) as tf.Tensor4D;
    const ref = tf.randomUniform([4, 4, c], 0, 1, 'float32', 6) as tf.Tensor3D;
    const out = forwardLevel(t, x, ref, {
      training: false,
      mean: tf.tensor1d(weights.residual.runMean),
      variance: tf.tensor1d(weights.residual.runVar),
    });
    expect(out.seen.shape).toEqual([3, 16]);
    expect(out.residual.shape).toEqual([3, 16]);
    expect(out.normality.shape).toEqual([3]);
    for (const m of [out.seen, out.pseudo, out.residual, out.normality]) {
      expect(Math.min(...m.dataSync())).toBeGreaterThanOrEqual(0);
    }
    // Seen head = |x . w_seen + b| patch by patch.
    const xs = x.arraySync() as number[][][][];
    const w0 = Array.from({ length: c }, (_, k) => weights.patch.w[k * 2]);
    const direct = xs[1][2][3].reduce((s, v, k) => s + v * w0[k], 0) + weights.patch.b[0];
    expect(out.seen.arraySync()[1][2 * 4 + 3]).toBeCloseTo(Math.abs(direct), 4);

    // Residual head against tf.conv2d on the reduced residual (running BN mean 0, var 1).
    const r = weights.residual;
    const red = tf.matMul(tf.reshape(tf.sub(ref, x), [48, c]), tf.tensor2d(r.reduce, [c, 4]));
    const conv = tf.add(
      tf.conv2d(tf.reshape(red, [3, 4, 4, 4]) as tf.Tensor4D, tf.tensor4d(r.conv, [3, 3, 4, 5]), 1, 'same'),
      r.convB,
    );
    const bn = tf.relu(tf.add(tf.mul(tf.div(conv, Math.sqrt(1 + 1e-5)), r.gamma), r.beta));
    const res = tf.abs(tf.add(tf.matMul(tf.reshape(bn, [48, 5]), tf.tensor2d(r.out, [5, 1])), r.outB));
    close(out.residual.dataSync(), res.dataSync());
    disposeHeadTensors(t);
  });

  it('reads back the weights it was built from', () => {
    const t = headTensors(weights, true);
    const back = readWeights(t, weights);
    expect(back.patch.w).toEqual(weights.patch.w);
    expect(back.residual.reduce).toEqual(weights.residual.reduce);
    expect(back.residual.conv).toEqual(weights.residual.conv);
    expect(back.normality.w1).toEqual(weights.normality.w1);
    disposeHeadTensors(t);
  });

  it('the residual head reads M_r - M_x: an image equal to the reference gives the same map as any other such image', () => {
    const t = headTensors(weights, false);
    const ref = tf.randomUniform([4, 4, c], 0, 1, 'float32', 8) as tf.Tensor3D;
    const bn = {
      training: false as const,
      mean: tf.tensor1d(weights.residual.runMean),
      variance: tf.tensor1d(weights.residual.runVar),
    };
    const a = forwardLevel(t, tf.expandDims(ref, 0) as tf.Tensor4D, ref, bn).residual.dataSync();
    const shifted = tf.add(ref, 1) as tf.Tensor3D;
    const b = forwardLevel(t, tf.expandDims(shifted, 0) as tf.Tensor4D, shifted, bn).residual.dataSync();
    close(a, b);
    disposeHeadTensors(t);
  });
});
