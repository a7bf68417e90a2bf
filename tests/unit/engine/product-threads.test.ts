import { afterEach, describe, expect, it } from 'vitest';
import { ThreadChooser, trainingThreads } from '../../../src-main/engine/train/product-threads';
import { headMatMul } from '../../../src-main/engine/train/matmul-runtime';

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('training products on one or two onnxruntime threads', () => {
  afterEach(() => {
    delete process.env.SWAN_HEAD_THREADS;
  });

  it('leaves the two-thread variant when it takes no more CPU than wall time, and tries it again later', async () => {
    const used: string[] = [];
    const c = new ThreadChooser();
    // Waiting costs wall time and no CPU: what a second thread that never gets a core looks like.
    const f = c.route(
      async (x: number) => (used.push('one'), x),
      async (x: number) => (used.push('two'), await wait(2), x),
    );
    for (let i = 0; i < 8; i++) expect(await f(i)).toBe(i);
    expect(used).toEqual(Array(8).fill('two'));
    expect(c.parallel).toBe(false);
    for (let i = 0; i < 64; i++) await f(i);
    expect(used.slice(8)).toEqual(Array(64).fill('one'));
    expect(c.parallel).toBe(true);
    await f(0);
    expect(used.at(-1)).toBe('two');
  });

  it('reads SWAN_HEAD_THREADS and refuses anything else', () => {
    process.env.SWAN_HEAD_THREADS = '1';
    expect(trainingThreads()).toBe(1);
    process.env.SWAN_HEAD_THREADS = '2';
    expect(trainingThreads()).toBe(2);
    process.env.SWAN_HEAD_THREADS = 'many';
    expect(() => trainingThreads()).toThrow(/SWAN_HEAD_THREADS/);
  });

  it('gives the same products on one, two and adaptive threads', async () => {
    const [m, k, n] = [70, 50, 30];
    const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i));
    const results: Float32Array[] = [];
    for (const threads of [1, 2, 'auto'] as const) {
      const mm = await headMatMul('onnxruntime', threads);
      results.push(await mm.matMul(a, m, k, b, n));
    }
    expect(Array.from(results[1])).toEqual(Array.from(results[0]));
    expect(Array.from(results[2])).toEqual(Array.from(results[0]));
  });
});
