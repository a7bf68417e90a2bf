/**
 * The swan-image:// protocol: the renderer's only way to show image files. A URL names a
 * kind and an image id (swan-image://thumb/42), never a path, and the open project decides
 * which file that is, so no page can read arbitrary files through it. Responses carry the
 * content type the service read from the image's bytes, and nosniff.
 */
import { resolve } from 'node:path';
import type { FileKind } from '../api/contract';
import { realPathInside, type ServedFile } from '../project/served-files';
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

export type { ServedFile };

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

export async function resolveImageRequest(url: string, project: ProjectFiles): Promise<Resolution> {
  const req = parseImageUrl(url);
  if (!req) return { ok: false, status: 400, reason: 'not an image URL of this app' };
  const dir = await project.dir();
  if (!dir) return { ok: false, status: 403, reason: 'no project is open' };
  const served = await project.lookup(req);
  if (!served || (!served.file && !served.body)) {
    return { ok: false, status: 404, reason: `image ${req.id} is not in the open project` };
  }
  if (!served.file) return { ok: true, served };
  // Generated files must come from the project's own folder, whatever the store says: the
  // same rule as the service's (served-files.ts), on real paths. Originals the service
  // served only after checking their content against the row.
  const file = req.kind === 'image' ? resolve(served.file) : await realPathInside(dir, served.file);
  if (!file) return { ok: false, status: 403, reason: 'file outside the project folder' };
  return { ok: true, served: { ...served, file } };
}
