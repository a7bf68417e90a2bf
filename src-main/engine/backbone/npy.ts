/**
 * Reader of NumPy `.npy` files (format 1.x/2.x, C order), for the weights and reference
 * outputs of backbones shipped as one array per file. Only the dtypes those use are read:
 * little-endian float32 and uint8.
 */
import { readFile } from 'node:fs/promises';
import { EngineError } from '../types';

export interface NpyArray {
  shape: number[];
  data: Float32Array | Uint8Array;
}

const MAGIC = '\x93NUMPY';

/** Parses the bytes of one `.npy` file; `name` only labels the errors. */
export function parseNpy(bytes: Uint8Array, name: string): NpyArray {
  const bad = (why: string) => new EngineError(`${name} is not a readable .npy array: ${why}`);
  if (bytes.length < 10 || String.fromCharCode(...bytes.subarray(0, 6)) !== MAGIC)
    throw bad('no NUMPY preamble');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6]!;
  if (major < 1 || major > 3) throw bad(`format version ${major}`);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  if (start + headerLen > bytes.length) throw bad('header runs past the end');
  const header = Buffer.from(bytes.subarray(start, start + headerLen)).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw bad(`header '${header.trim()}'`);
  if (fortran === 'True') throw bad('Fortran order');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw bad(`shape (${shapeText})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  const itemBytes = descr === '<f4' ? 4 : descr === '|u1' || descr === '<u1' ? 1 : 0;
  if (itemBytes === 0) throw bad(`dtype ${descr} (float32 and uint8 are read)`);
  if (bytes.length - offset !== count * itemBytes) {
    throw bad(
      `holds ${bytes.length - offset} data bytes, shape ${shape.join('x')} needs ${count * itemBytes}`,
    );
  }
  // Copied (a Buffer's slice would be a view): the data offset need not be 4-byte aligned.
  const raw = new Uint8Array(count * itemBytes);
  raw.set(bytes.subarray(offset));
  const data = itemBytes === 4 ? new Float32Array(raw.buffer, 0, count) : raw;
  return { shape, data };
}

export async function readNpy(file: string): Promise<NpyArray> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new EngineError(`Cannot read ${file}: ${(err as Error).message}`);
  }
  return parseNpy(bytes, file);
}

/** A float32 array of the expected shape, or an EngineError naming the file. */
export async function readNpyFloat32(
  file: string,
  shape?: number[],
): Promise<{ shape: number[]; data: Float32Array }> {
  const a = await readNpy(file);
  if (!(a.data instanceof Float32Array)) throw new EngineError(`${file}: expected float32, got uint8`);
  if (shape && a.shape.join('x') !== shape.join('x')) {
    throw new EngineError(`${file} has shape ${a.shape.join('x')}, expected ${shape.join('x')}`);
  }
  return { shape: a.shape, data: a.data };
}
