/**
 * The swan-image:// protocol: the renderer's only way to show image files. A URL names a
 * kind and an image id (swan-image://thumb/42), never a path, and the open project decides
 * which file that is, so no page can read arbitrary files through it.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import type { FileKind } from '../api/contract';
import { IMAGE_SCHEME } from '../../src-preload/bridge';

const KINDS: readonly FileKind[] = ['thumb', 'image', 'heatmap'];

export interface ImageRequest {
  kind: FileKind;
  id: number;
}

/** Parses swan-image://<kind>/<id>; anything else (paths, traversal, extra segments) is null. */
export function parseImageUrl(url: string): ImageRequest | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if (u.protocol !== `${IMAGE_SCHEME}:`) return null;
  const kind = u.hostname as FileKind;
  if (!KINDS.includes(kind)) return null;
  const m = /^\/([1-9][0-9]{0,11})\/?$/.exec(u.pathname);
  if (!m) return null;
  return { kind, id: Number(m[1]) };
}

/** What a front door may send: a file to stream or bytes made on the fly (service.resolveFile). */
export interface ServedFile {
  contentType: string;
  file?: string;
  body?: Buffer;
}

/** The open project as the protocol sees it. */
export interface ProjectFiles {
  /** Project folder, or null when no project is open. */
  dir(): Promise<string | null> | string | null;
  /**
   * What the project holds for this kind and id, or null when the id is not in the
   * project. An 'image' is the imported original (which may live anywhere: the inspector
   * imported it); thumbnails are generated inside the project; heatmaps are rendered bytes.
   */
  lookup(req: ImageRequest): Promise<ServedFile | null> | ServedFile | null;
}

export type Resolution =
  { ok: true; served: ServedFile } | { ok: false; status: 400 | 403 | 404; reason: string };

export function isInside(dir: string, path: string): boolean {
  const rel = relative(resolve(dir), resolve(path));
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

export async function resolveImageRequest(url: string, project: ProjectFiles): Promise<Resolution> {
  const req = parseImageUrl(url);
  if (!req) return { ok: false, status: 400, reason: 'not an image URL of this app' };
  const dir = await project.dir();
  if (!dir) return { ok: false, status: 403, reason: 'no project is open' };
  const served = await project.lookup(req);
  if (!served || (!served.file && !served.body)) {
    return { ok: false, status: 404, reason: `image ${req.id} is not in the open project` };
  }
  // Generated files must come from the project's own folder, whatever the store says.
  if (served.file && req.kind !== 'image' && !isInside(dir, served.file)) {
    return { ok: false, status: 403, reason: 'file outside the project folder' };
  }
  return { ok: true, served: served.file ? { ...served, file: resolve(served.file) } : served };
}
