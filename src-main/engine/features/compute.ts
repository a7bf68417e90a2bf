/**
 * Turns a batch of work items into pyramid feature maps with one loaded backbone. Runs in a
 * worker thread or in the caller's thread; the same code either way, so both give the same
 * numbers.
 */
import { loadImageResized, resizeRgb } from '../../data/decode';
import { ImageError } from '../../data/image-error';
import type { RgbImage } from '../../data/types';
import { initBackend, type BackendInfo, type BackendPreference } from '../backend';
import { loadBackbone, type Backbone } from '../backbone';
import { loadOnnxFeatureNet } from '../backbone/onnx-runtime';
import { EngineError, type BackboneSpec, type FeatureMap } from '../types';
import { loadModel } from '../model-file';
import { applyBackboneWeights } from '../train/train-full';
import type { WorkItem, WorkResult } from './types';
import { tfjsFeatureNet, type FeatureNet, type NetOutput } from './feature-net';
import type { RuntimeChoice } from './runtime';
import { LUMA_BINS, lumaHistogram } from './luma-histogram';
import { levelSize } from './level-size';
import { levelDims, type InputShape } from './geometry';

export { levelSize };

export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A full-mode model's fine-tuned weights over the pretrained backbone, and its fused ops refolded. */
async function applyFineTuned(backbone: Backbone, modelDir: string): Promise<void> {
  const { state } = await loadModel(modelDir, { backboneId: backbone.id });
  if (!state.backbone) throw new EngineError(`The model in ${modelDir} holds no fine-tuned backbone.`);
  applyBackboneWeights(backbone.layersModel(), state);
  backbone.sync();
}

export type Prepared = { ok: true; imgs: RgbImage[] } | { ok: false; error: string };

export class FeatureComputer {
  private constructor(
    readonly net: FeatureNet,
    readonly backend: BackendInfo,
    readonly levels: number,
    /** The level-0 input: the spec's shape, else square. */
    private readonly shape: { inputSize: number; inputShape?: InputShape } = { inputSize: net.inputSize },
  ) {}

  static async create(
    spec: BackboneSpec,
    levels: number,
    prefer: BackendPreference,
    runtime: RuntimeChoice = { kind: 'tfjs', description: 'tfjs' },
  ): Promise<FeatureComputer> {
    const backend = await initBackend({ prefer });
    if (runtime.kind === 'onnxruntime') {
      return new FeatureComputer(
        await loadOnnxFeatureNet(spec, runtime.modelPath, runtime.threads),
        backend,
        levels,
        spec,
      );
    }
    const backbone = await loadBackbone(spec);
    try {
      if (spec.fineTuned) await applyFineTuned(backbone, spec.fineTuned.modelDir);
    } catch (err) {
      backbone.dispose();
      throw err;
    }
    return new FeatureComputer(tfjsFeatureNet(backbone), backend, levels, spec);
  }

  /** Around a backbone already loaded in this thread (full-mode training); dispose() frees it. */
  static around(backbone: Backbone, backend: BackendInfo, levels: number): FeatureComputer {
    return new FeatureComputer(tfjsFeatureNet(backbone), backend, levels);
  }

  /**
   * Every level is resized from the original (libvips shrinks while decoding a file), not from
   * the level above: a resize of a resize is blurrier than the torchvision pipeline.
   */
  private async decode(item: WorkItem): Promise<RgbImage[]> {
    const sizes = Array.from({ length: this.levels }, (_, l) => levelDims(this.shape, l));
    if (item.kind === 'path') return Promise.all(sizes.map((s) => loadImageResized(item.path, s)));
    const { image, label } = item;
    if (image.width * image.height * 3 !== image.data.length || image.width < 1 || image.height < 1) {
      throw new ImageError(
        label,
        `bad in-memory image (${image.width}x${image.height}, ${image.data.length} bytes)`,
      );
    }
    return Promise.all(
      sizes.map((s) =>
        image.width === s.width && image.height === s.height ? image : resizeRgb(image, s.width, s.height),
      ),
    );
  }

  async compute(items: WorkItem[]): Promise<WorkResult[]> {
    return this.run(await this.prepare(items));
  }

  /** Decodes every item at every level; a bad item becomes its error, never a rejection. */
  prepare(items: WorkItem[]): Promise<Prepared[]> {
    return Promise.all(
      items.map((item) =>
        this.decode(item).then(
          (imgs): Prepared => ({ ok: true, imgs }),
          (err: unknown): Prepared => ({ ok: false, error: describeError(err) }),
        ),
      ),
    );
  }

  /** The forward passes, one per level, over the items that decoded. */
  async run(decoded: Prepared[]): Promise<WorkResult[]> {
    const good = decoded.flatMap((d, i) => (d.ok ? [{ i, imgs: d.imgs }] : []));
    const perItem: FeatureMap[][] = decoded.map(() => []);
    const pooled: (Float32Array | undefined)[] = decoded.map(() => undefined);
    const taps: (Record<string, FeatureMap> | undefined)[] = decoded.map(() => undefined);
    try {
      for (let level = 0; level < this.levels && good.length > 0; level++) {
        // The pooled statistics and the taps come from the level-0 pass (the model input size).
        const out = await this.forward(
          good.map((g) => g.imgs[level]!),
          level === 0,
        );
        good.forEach((g, k) => {
          perItem[g.i]!.push(out.maps[k]!);
          if (out.pooled) pooled[g.i] = out.pooled[k];
          if (out.taps) taps[g.i] = out.taps[k];
        });
      }
    } catch (err) {
      const msg = `feature extraction failed: ${describeError(err)}`;
      return decoded.map((d) => (d.ok ? { ok: false, error: msg } : d));
    }
    return decoded.map((d, i) => {
      if (!d.ok) return d;
      const p = pooled[i];
      const t = taps[i];
      return { ok: true, levels: perItem[i]!, ...(p ? { pooled: p } : {}), ...(t ? { taps: t } : {}) };
    });
  }

  /** One forward pass over same-size images; the pooled vectors get the input's luminance histogram. */
  private async forward(imgs: RgbImage[], levelZero: boolean): Promise<NetOutput> {
    const { width: w, height: h } = imgs[0]!;
    const pixels = new Float32Array(imgs.length * w * h * 3);
    imgs.forEach((img, k) => pixels.set(img.data, k * w * h * 3));
    const out = await this.net.forward(pixels, imgs.length, h, w, levelZero);
    if (!out.pooled) return out;
    // The layer statistics, then the input's luminance histogram (POOLED_CONTENT).
    const pooled = out.pooled.map((stats, k) => {
      const v = new Float32Array(stats.length + LUMA_BINS);
      v.set(stats);
      v.set(lumaHistogram(imgs[k]!), stats.length);
      return v;
    });
    return { ...out, pooled };
  }

  dispose(): void {
    this.net.dispose();
  }
}
