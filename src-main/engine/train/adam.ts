/**
 * Adam as PyTorch runs it in the reference code: gradient-norm clipping over all
 * parameters, then L2 weight decay added to the gradient (not decoupled), then Adam with
 * bias correction. Written out because tf.train.adam can neither clip globally nor change
 * its learning rate mid-run.
 */
import * as tf from '@tensorflow/tfjs';

export class ClippedAdam {
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private t = 0;

  constructor(
    private readonly params: tf.Variable[],
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly eps = 1e-8,
  ) {
    // tidy frees the zero tensors; variables survive it.
    this.m = tf.tidy(() => params.map((p) => tf.variable(tf.zerosLike(p), false)));
    this.v = tf.tidy(() => params.map((p) => tf.variable(tf.zerosLike(p), false)));
  }

  /**
   * One update; returns the gradient norm before clipping. grads[i] belongs to params[i]; a
   * missing gradient (a head switched off) leaves its parameter untouched, as PyTorch does.
   */
  step(grads: (tf.Tensor | null | undefined)[], lr: number, weightDecay: number, clipNorm: number): number {
    this.t++;
    const present = grads.filter((g): g is tf.Tensor => !!g);
    if (present.length === 0) return 0;
    const norm = tf.tidy(() => Math.sqrt(tf.addN(present.map((g) => tf.sum(tf.square(g)))).dataSync()[0]));
    const scale = clipNorm > 0 ? Math.min(1, clipNorm / (norm + 1e-6)) : 1;
    const bc1 = 1 - this.beta1 ** this.t;
    const bc2 = 1 - this.beta2 ** this.t;
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        const raw = grads[i];
        if (!raw) return;
        let g = scale === 1 ? raw : tf.mul(raw, scale);
        if (weightDecay > 0) g = tf.add(g, tf.mul(p, weightDecay));
        const m = tf.add(tf.mul(this.m[i], this.beta1), tf.mul(g, 1 - this.beta1));
        const v = tf.add(tf.mul(this.v[i], this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        this.m[i].assign(m);
        this.v[i].assign(v);
        const denom = tf.add(tf.sqrt(tf.div(v, bc2)), this.eps);
        p.assign(tf.sub(p, tf.mul(tf.div(m, denom), lr / bc1)));
      });
    });
    return norm;
  }

  dispose(): void {
    for (const x of [...this.m, ...this.v]) x.dispose();
  }
}

/** dra.md: lr x0.1 every 10 of 30 epochs, i.e. at one and two thirds of the run. */
export function stepDecayLr(base: number, step: number, totalSteps: number): number {
  return base * 0.1 ** Math.min(2, Math.floor((3 * step) / Math.max(1, totalSteps)));
}
