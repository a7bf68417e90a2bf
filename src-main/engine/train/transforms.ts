/**
 * Random rotation of the training images (dra.md: up to 180 degrees) approximated on cached
 * feature maps by the dihedral group: 90-degree rotations and flips permute the patches of a
 * stride-32 map exactly, whereas an arbitrary angle would need the backbone again.
 */

/** Transforms available for an h x w map: all 8 when square, else the 4 that keep the shape. */
export function transformCount(h: number, w: number): number {
  return h === w ? 8 : 4;
}

/**
 * For transform t, the source patch index of every output patch (row-major). Square maps:
 * t = flip * 4 + quarterTurns. Non-square maps: t in [0, 4): bit 0 flips rows, bit 1 flips columns.
 */
export function patchPermutation(t: number, h: number, w: number): Int32Array {
  const perm = new Int32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let sy = y;
      let sx = x;
      if (h === w) {
        const n = h;
        for (let q = 0; q < t % 4; q++) {
          // out(y, x) = in(n - 1 - x, y): one clockwise quarter turn, applied q times.
          const ny = n - 1 - sx;
          const nx = sy;
          sy = ny;
          sx = nx;
        }
        if (t >= 4) sx = n - 1 - sx;
      } else {
        if (t & 1) sy = h - 1 - sy;
        if (t & 2) sx = w - 1 - sx;
      }
      perm[y * w + x] = sy * w + sx;
    }
  }
  return perm;
}

const cache = new Map<string, Int32Array>();

export function cachedPermutation(t: number, h: number, w: number): Int32Array {
  const key = `${t}:${h}:${w}`;
  let p = cache.get(key);
  if (!p) {
    p = patchPermutation(t, h, w);
    cache.set(key, p);
  }
  return p;
}
