/** Side of pyramid level `level`: the input size halved `level` times (no TF.js: the main process reads it). */
export function levelSize(inputSize: number, level: number): number {
  return Math.max(1, Math.round(inputSize / 2 ** level));
}
