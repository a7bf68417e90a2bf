/**
 * Content hashes of image files, remembered while the file's size, modification and change
 * times and inode stay the same (the way git's index avoids re-reading files): a re-scoring
 * of cached images then costs one stat per file instead of reading and hashing it.
 */
import { stat } from 'node:fs/promises';
import { LRUCache } from 'lru-cache';
import { fileContentHash } from '../../data/decode';

/** Files whose hash is remembered, at most (about 200 bytes each). */
const REMEMBERED = 100_000;

export class FileHashes {
  private readonly known = new LRUCache<string, { stamp: string; hash: string }>({ max: REMEMBERED });

  async of(path: string): Promise<string> {
    let stamp: string | null = null;
    try {
      const s = await stat(path, { bigint: true });
      stamp = `${s.size}:${s.mtimeNs}:${s.ctimeNs}:${s.ino}`;
    } catch {
      // fileContentHash reports why the file cannot be read
    }
    const k = stamp ? this.known.get(path) : undefined;
    if (k && k.stamp === stamp) return k.hash;
    const hash = await fileContentHash(path);
    if (stamp) this.known.set(path, { stamp, hash });
    return hash;
  }
}
