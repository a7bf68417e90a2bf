/**
 * matMul variants whose gradients never use transposed matMul, and slicing/shifting done
 * with constant 0/1 matrices. On wasm, matMul with transposeA/transposeB runs 10-20x slower
 * than an explicit transpose followed by a plain matMul (measured: 121 ms vs 11 ms for a
 * 768x2597 @ 2597x64 weight gradient), TF.js's own matMul gradient uses the transposed
 * forms, and slicing along an inner axis (and the SplitV of concat's gradient) takes
 * milliseconds where a small matMul takes microseconds.
 */
import * as tf from '@tensorflow/tfjs';

/** a @ b, differentiable in both. */
export const matMul = tf.customGrad(((a: tf.Tensor2D, b: tf.Tensor2D, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => [
      tf.matMul(dy, tf.transpose(saved[1] as tf.Tensor2D)),
      tf.matMul(tf.transpose(saved[0] as tf.Tensor2D), dy),
    ],
  };
}) as never) as unknown as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/**
 * a @ w where a needs no gradient (input features): only the weight gradient is computed,
 * which saves a [rows, in] product per step.
 */
export function matMulConstInput(a: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const f = tf.customGrad(((wIn: tf.Tensor2D, save: tf.GradSaveFunc) => {
    // Saved so that it outlives the forward scope (the backward pass runs after it).
    save([a]);
    return {
      value: tf.matMul(a, wIn),
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => [
        tf.matMul(tf.transpose(saved[0] as tf.Tensor2D), dy),
      ],
    };
  }) as never);
  return f(w) as tf.Tensor2D;
}

/** A constant matrix and its transpose, kept for the life of the process (they are small). */
interface ConstPair {
  m: tf.Tensor2D;
  t: tf.Tensor2D;
}
const constants = new Map<string, ConstPair>();

function constPair(
  key: string,
  rows: number,
  cols: number,
  fill: (set: (r: number, c: number) => void) => void,
): ConstPair {
  let pair = constants.get(key);
  if (!pair || pair.m.isDisposed) {
    const data = new Float32Array(rows * cols);
    fill((r, c) => {
      data[r * cols + c] = 1;
    });
    pair = tf.tidy(() => {
      const m = tf.tensor2d(data, [rows, cols]);
      return { m: tf.keep(m), t: tf.keep(tf.transpose(m)) };
    });
    constants.set(key, pair);
  }
  return pair;
}

/** x @ m for a constant m (gradient x only, through the cached transpose). */
function matMulConstRight(x: tf.Tensor2D, pair: ConstPair): tf.Tensor2D {
  const f = tf.customGrad(((xIn: tf.Tensor2D) => ({
    value: tf.matMul(xIn, pair.m),
    gradFunc: (dy: tf.Tensor2D) => [tf.matMul(dy, pair.t)],
  })) as never);
  return f(x) as tf.Tensor2D;
}

/** m @ x for a constant m (gradient x only). */
function matMulConstLeft(pair: ConstPair, x: tf.Tensor2D): tf.Tensor2D {
  const f = tf.customGrad(((xIn: tf.Tensor2D) => ({
    value: tf.matMul(pair.m, xIn),
    gradFunc: (dy: tf.Tensor2D) => [tf.matMul(pair.t, dy)],
  })) as never);
  return f(x) as tf.Tensor2D;
}

/** Columns [start, start + n) of a [rows, cols] matrix. */
export function sliceColumns(x: tf.Tensor2D, start: number, n: number): tf.Tensor2D {
  const cols = x.shape[1];
  const pair = constPair(`cols:${cols}:${start}:${n}`, cols, n, (set) => {
    for (let j = 0; j < n; j++) set(start + j, j);
  });
  return matMulConstRight(x, pair);
}

/**
 * The nine 3x3 neighbours (zero padding 1) of every position of an h x w grid, as a
 * [9 * h*w, h*w] selection matrix: row (k * P + p) picks the neighbour at offset
 * (k / 3 - 1, k % 3 - 1) of p.
 */
function shiftMatrix(h: number, w: number): ConstPair {
  const p = h * w;
  return constPair(`shift:${h}:${w}`, 9 * p, p, (set) => {
    for (let k = 0; k < 9; k++) {
      const dy = Math.floor(k / 3) - 1;
      const dx = (k % 3) - 1;
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const sy = y + dy;
          const sx = x + dx;
          if (sy >= 0 && sy < h && sx >= 0 && sx < w) set(k * p + y * w + x, sy * w + sx);
        }
    }
  });
}

/**
 * im2col for a 3x3 conv with padding 1: z [B, h, w, cin] -> [B*h*w, 9*cin], columns ordered
 * (dy, dx, cin). One matMul with a constant shift matrix between two transposes.
 */
export function im2col3x3(z: tf.Tensor4D): tf.Tensor2D {
  const [b, h, w, cin] = z.shape;
  const p = h * w;
  const zt = tf.reshape(tf.transpose(tf.reshape(z, [b, p, cin]), [1, 0, 2]), [p, b * cin]) as tf.Tensor2D;
  const shifted = matMulConstLeft(shiftMatrix(h, w), zt); // [9P, B*cin]
  const cols = tf.transpose(tf.reshape(shifted, [9, p, b, cin]), [2, 1, 0, 3]); // [B, P, 9, cin]
  return tf.reshape(cols, [b * p, 9 * cin]) as tf.Tensor2D;
}
