/**
 * On-disk cache of feature maps, one binary file per image and configuration.
 *
 * File layout (little-endian): magic 'SWF2', u32 level count, u32 length of the pooled vector
 * (0: none), per level u32 h, w, c, then 16 bytes md5 of the payload, then the Float32 payload
 * of every level in order and the pooled vector. The header is a multiple of 4 bytes so the
 * payload can be viewed as Float32Array without copying.
 * A file that is short, long, of another layout or whose checksum fails is treated as a miss.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ImageFeatures } from '../types';

const MAGIC = 0x32465753; // 'SWF2' read as little-endian u32
const FORMAT = 'swan-features-2';

/** $SWAN_CACHE_DIR, else the per-user cache folder of the platform. */
export function defaultCacheDir(): string {
  if (process.env.SWAN_CACHE_DIR) return process.env.SWAN_CACHE_DIR;
  if (process.platform === 'win32' && process.env.LOCALAPPDATA) {
    return path.join(process.env.LOCALAPPDATA, 'swan-inspector', 'cache');
  }
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'swan-inspector');
}

/** Everything besides the image content that changes the features. */
export interface CacheConfig {
  backboneId: string;
  /** Identity of the weight files (see weightsIdentity). */
  weights: string;
  featureLayer: string;
  /** BackboneSpec.pooledLayer, null when the extractor pools nothing. */
  pooledLayer: string | null;
  /** What the pooled vector holds (features/luma-histogram.ts POOLED_CONTENT), null with no pooled layer. */
  pooledContent: string | null;
  inputSize: number;
  /** BackboneSpec.inputShape; absent for a square input, so the square caches keep their keys. */
  inputShape?: { height: number; width: number };
  levels: number;
  /**
   * BackboneSpec.tapLayers; absent (not empty) when there are none, so that the keys of
   * every cache written before taps existed stay valid.
   */
  tapLayers?: string[];
  /** backend.ts backendTag of the backend that computes the features. */
  backend: string;
  /**
   * SHA-256 of a full-mode model's fine-tuned backbone weights (its backbone.bin): its
   * features are the model's own. Absent: the backbone's pretrained weights.
   */
  fineTuned?: string;
}

/**
 * The cache's configuration tag. Every cache written before the backend was part of the key was
 * computed on wasm, so wasm keeps the tag it had then (the backend left out of the hash) and the
 * shared caches stay valid; any other backend, and a fine-tuned backbone, get tags of their own.
 */
export function configTag(config: CacheConfig): string {
  const { backend, fineTuned, ...rest } = config;
  return sha256(
    JSON.stringify({
      format: FORMAT,
      ...rest,
      ...(backend === 'wasm' ? {} : { backend }),
      ...(fineTuned ? { fineTuned } : {}),
    }),
  );
}

export function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

export class FeatureCache {
  private readonly dir: string;
  private readonly configTag: string;

  constructor(
    root: string,
    readonly config: CacheConfig,
  ) {
    this.dir = path.join(root, 'features');
    this.configTag = configTag(config);
  }

  /** Cache file of an image whose content hash (or caller key hash) is `contentHash`. */
  fileFor(contentHash: string): string {
    const key = sha256(`${this.configTag}:${contentHash}`);
    return path.join(this.dir, key.slice(0, 2), `${key}.f32`);
  }

  async read(contentHash: string): Promise<ImageFeatures | null> {
    let buf: Buffer;
    try {
      buf = await readFile(this.fileFor(contentHash));
    } catch {
      return null;
    }
    return decode(buf, this.config.levels, this.config.tapLayers);
  }

  /** Atomic: written to a temporary name and renamed. A failed write only costs a recompute. */
  async write(contentHash: string, features: ImageFeatures): Promise<void> {
    const file = this.fileFor(contentHash);
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(tmp, encode(features, this.config.tapLayers));
      await rename(tmp, file);
    } catch {
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}

/** The tap maps follow the levels as further maps, in the order of `tapLayers`. */
export function encode(features: ImageFeatures, tapLayers: string[] = []): Buffer {
  const taps = tapLayers.map((name) => {
    const m = features.taps?.[name];
    if (!m) throw new Error(`features lack the tap layer '${name}'`);
    return m;
  });
  const all = [...features.levels, ...taps];
  const n = all.length;
  const pooled = features.pooled ?? new Float32Array(0);
  const headerBytes = 12 + 12 * n + 16;
  const blocks = [...all.map((m) => m.data), pooled];
  const payloadBytes = blocks.reduce((s, d) => s + d.byteLength, 0);
  const buf = Buffer.alloc(headerBytes + payloadBytes);
  buf.writeUInt32LE(MAGIC, 0);
  buf.writeUInt32LE(n, 4);
  buf.writeUInt32LE(pooled.length, 8);
  all.forEach((m, i) => {
    buf.writeUInt32LE(m.h, 12 + 12 * i);
    buf.writeUInt32LE(m.w, 16 + 12 * i);
    buf.writeUInt32LE(m.c, 20 + 12 * i);
  });
  let off = headerBytes;
  for (const d of blocks) {
    Buffer.from(d.buffer, d.byteOffset, d.byteLength).copy(buf, off);
    off += d.byteLength;
  }
  createHash('md5')
    .update(buf.subarray(headerBytes))
    .digest()
    .copy(buf, 12 + 12 * n);
  return buf;
}

export function decode(buf: Buffer, pyramidLevels: number, tapLayers: string[] = []): ImageFeatures | null {
  const levels = pyramidLevels + tapLayers.length;
  if (buf.length < 12 || buf.readUInt32LE(0) !== MAGIC || buf.readUInt32LE(4) !== levels) return null;
  const pooledLength = buf.readUInt32LE(8);
  const headerBytes = 12 + 12 * levels + 16;
  if (buf.length < headerBytes) return null;
  const dims: [number, number, number][] = [];
  let payload = pooledLength * 4;
  for (let i = 0; i < levels; i++) {
    const d: [number, number, number] = [
      buf.readUInt32LE(12 + 12 * i),
      buf.readUInt32LE(16 + 12 * i),
      buf.readUInt32LE(20 + 12 * i),
    ];
    dims.push(d);
    payload += d[0] * d[1] * d[2] * 4;
  }
  if (buf.length !== headerBytes + payload) return null;
  const sum = createHash('md5').update(buf.subarray(headerBytes)).digest();
  if (!sum.equals(buf.subarray(12 + 12 * levels, headerBytes))) return null;
  // Own, aligned memory: a view of Node's pooled buffer could be misaligned or shared.
  const floats = new Float32Array(payload / 4);
  new Uint8Array(floats.buffer).set(buf.subarray(headerBytes));
  let at = 0;
  const maps = dims.map(([h, w, c]) => {
    const data = floats.subarray(at, at + h * w * c);
    at += h * w * c;
    return { h, w, c, data };
  });
  const out: ImageFeatures = { levels: maps.slice(0, pyramidLevels) };
  if (pooledLength > 0) out.pooled = floats.subarray(at, at + pooledLength);
  if (tapLayers.length > 0)
    out.taps = Object.fromEntries(tapLayers.map((name, i) => [name, maps[pyramidLevels + i]!]));
  return out;
}
