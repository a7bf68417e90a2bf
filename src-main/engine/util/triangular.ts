/**
 * The inverse of a lower-triangular (Cholesky) factor, by forward substitution in double
 * precision: the Gaussian head keeps it as its whitening, the global head's exact leave-one-out
 * needs the diagonal of A^-1 = L^-T L^-1. Written out because solving for the whole inverse
 * through ml-matrix takes about 30 times longer (n = 1,141: 10 s against 0.35 s).
 */
import type { Matrix } from 'ml-matrix';

/** Row-major L^-1 of a lower-triangular L. */
export function lowerInverse(lower: Matrix): Float64Array {
  const n = lower.rows;
  const l = lower.to2DArray();
  const inv = new Float64Array(n * n);
  // Column j of L^-1 solves L y = e_j; y is zero above row j.
  const y = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    y[j] = 1 / l[j][j];
    inv[j * n + j] = y[j];
    for (let i = j + 1; i < n; i++) {
      const row = l[i];
      let s = 0;
      for (let k = j; k < i; k++) s += row[k] * y[k];
      y[i] = -s / row[i];
      inv[i * n + j] = y[i];
    }
  }
  return inv;
}

/** diag(A^-1) from A's Cholesky factor L: entry i is the squared norm of column i of L^-1. */
export function inverseDiagonal(lower: Matrix): Float64Array {
  const n = lower.rows;
  const inv = lowerInverse(lower);
  const diag = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let sq = 0;
    for (let k = i; k < n; k++) sq += inv[k * n + i] * inv[k * n + i];
    diag[i] = sq;
  }
  return diag;
}
