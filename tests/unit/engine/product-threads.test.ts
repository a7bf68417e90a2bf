import { afterEach, describe, expect, it } from 'vitest';
import { trainingThreads } from '../../../src-main/engine/train/product-threads';
import { headMatMul } from '../../../src-main/engine/train/matmul-runtime';

describe('training products on one or two onnxruntime threads', () => {
  afterEach(() => {
    delete process.env.SWAN_HEAD_THREADS;
  });

  it('reads SWAN_HEAD_THREADS and refuses anything else', () => {
    process.env.SWAN_HEAD_THREADS = '1';
    expect(trainingThreads()).toBe(1);
    process.env.SWAN_HEAD_THREADS = '2';
    expect(trainingThreads()).toBe(2);
    process.env.SWAN_HEAD_THREADS = 'auto';
    expect(() => trainingThreads()).toThrow(/SWAN_HEAD_THREADS/);
  });

  it("gives the same products on two threads call after call, and one thread's to float rounding", async () => {
    const [m, k, n] = [300, 200, 40];
    const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i));
    const one = await (await headMatMul('onnxruntime', 1)).matMul(a, m, k, b, n);
    const two = await headMatMul('onnxruntime', 2);
    const first = Array.from(await two.matMul(a, m, k, b, n));
    for (let i = 0; i < 3; i++) expect(Array.from(await two.matMul(a, m, k, b, n))).toEqual(first);
    first.forEach((v, i) => expect(Math.abs(v - one[i])).toBeLessThan(1e-4 * (1 + Math.abs(one[i]))));
  });
});
