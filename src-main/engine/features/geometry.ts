/**
 * The model input's shape. Square (inputSize x inputSize) unless the project's images are
 * markedly elongated: then the short side is inputSize and the long side keeps the images'
 * median aspect ratio, so thin defects are not squashed away (KolektorSDD's 250x630 parts lose
 * 2.8x vertically in a square). A property of the images alone, never of labels or results.
 * No TF.js here: the main process reads it.
 */
import { readImageHeader } from '../../data/decode';
import { levelSize } from './level-size';

export interface InputShape {
  height: number;
  width: number;
}

/**
 * Median long/short side ratio from which the input keeps the aspect. Below it a square input
 * squashes little (HeadCT's ~1.17) and stays bit-identical to the square models.
 */
export const ELONGATED_ASPECT = 1.5;

/** The long side is a multiple of this (the coarsest feature layer's stride), so no cell is partial. */
export const SHAPE_STRIDE = 32;

/** Images whose headers are read to choose the shape (evenly spread over the list). */
export const SHAPE_SAMPLE = 200;

/** Height and width of level 0: the spec's shape, else the square of its input size. */
export function inputDims(spec: { inputSize: number; inputShape?: InputShape }): InputShape {
  return spec.inputShape ?? { height: spec.inputSize, width: spec.inputSize };
}

/** Height and width of pyramid level `level` (each side halved `level` times). */
export function levelDims(spec: { inputSize: number; inputShape?: InputShape }, level: number): InputShape {
  const { height, width } = inputDims(spec);
  return { height: levelSize(height, level), width: levelSize(width, level) };
}

/** Whether two optional shapes are the same input (absent = square). */
export function sameShape(a: InputShape | undefined, b: InputShape | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.height === b.height && a.width === b.width;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The shape for images of these height/width ratios; undefined = square. */
export function shapeForAspects(inputSize: number, aspects: readonly number[]): InputShape | undefined {
  const usable = aspects.filter((a) => Number.isFinite(a) && a > 0);
  if (usable.length === 0) return undefined;
  const a = median(usable);
  if (Math.max(a, 1 / a) < ELONGATED_ASPECT) return undefined;
  const long = Math.max(
    SHAPE_STRIDE,
    Math.round((inputSize * Math.max(a, 1 / a)) / SHAPE_STRIDE) * SHAPE_STRIDE,
  );
  return a > 1 ? { height: long, width: inputSize } : { height: inputSize, width: long };
}

/** The shape for a project's images, from their headers (unreadable ones are skipped). */
export async function shapeForImages(
  inputSize: number,
  paths: readonly string[],
): Promise<InputShape | undefined> {
  const step = Math.max(1, paths.length / SHAPE_SAMPLE);
  const picked: string[] = [];
  for (let i = 0; i < paths.length && picked.length < SHAPE_SAMPLE; i += step)
    picked.push(paths[Math.floor(i)]!);
  const aspects = await Promise.all(
    picked.map((p) =>
      readImageHeader(p).then(
        (h) => h.height / h.width,
        () => NaN,
      ),
    ),
  );
  return shapeForAspects(inputSize, aspects);
}
