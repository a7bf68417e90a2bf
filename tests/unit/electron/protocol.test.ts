import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseImageUrl, resolveImageRequest, type ProjectFiles } from '../../../src-main/electron/protocol';

const dir = mkdtempSync(join(tmpdir(), 'swan-proto-'));
mkdirSync(join(dir, 'thumbs'));
writeFileSync(join(dir, 'thumbs', '1.webp'), 'thumbnail bytes');

/** A project holding image 1 (imported from /data) and its thumbnail. */
function project(overrides: Partial<Record<string, string>> = {}, open = true): ProjectFiles {
  const files: Record<string, string> = {
    'image/1': '/data/parts/a.png',
    'thumb/1': join(dir, 'thumbs', '1.webp'),
    ...overrides,
  };
  return {
    dir: () => (open ? dir : null),
    lookup: (r) => {
      const file = files[`${r.kind}/${r.id}`];
      return file ? { contentType: 'image/png', file } : null;
    },
  };
}

describe('swan-image protocol', () => {
  it('parses kind and id, and nothing else', () => {
    expect(parseImageUrl('swan-image://thumb/12')).toEqual({ kind: 'thumb', id: 12 });
    expect(parseImageUrl('swan-image://image/7/')).toEqual({ kind: 'image', id: 7 });
    expect(parseImageUrl('swan-image://image/../../etc/passwd')).toBeNull();
    expect(parseImageUrl('swan-image://image/%2e%2e%2fetc%2fpasswd')).toBeNull();
    expect(parseImageUrl('swan-image://file//etc/passwd')).toBeNull();
    expect(parseImageUrl('swan-image://image/0')).toBeNull();
    expect(parseImageUrl('swan-image://image/1?path=/etc/passwd')).toEqual({ kind: 'image', id: 1 });
    expect(parseImageUrl('file:///etc/passwd')).toBeNull();
    expect(parseImageUrl('garbage')).toBeNull();
  });

  it('serves the files the open project holds', async () => {
    const img = await resolveImageRequest('swan-image://image/1', project());
    expect(img).toEqual({ ok: true, served: { contentType: 'image/png', file: '/data/parts/a.png' } });
    const thumb = await resolveImageRequest('swan-image://thumb/1', project());
    expect(thumb).toEqual({
      ok: true,
      served: { contentType: 'image/png', file: join(dir, 'thumbs', '1.webp') },
    });
    const heat = await resolveImageRequest('swan-image://heatmap/1', {
      dir: () => dir,
      lookup: () => ({ contentType: 'image/png', body: Buffer.from([1, 2, 3]) }),
    });
    expect(heat).toMatchObject({ ok: true, served: { body: Buffer.from([1, 2, 3]) } });
  });

  it('refuses paths, unknown ids, and anything when no project is open', async () => {
    expect(await resolveImageRequest('swan-image://image/../../etc/passwd', project())).toMatchObject({
      ok: false,
      status: 400,
    });
    expect(await resolveImageRequest('swan-image://image/2', project())).toMatchObject({
      ok: false,
      status: 404,
    });
    expect(await resolveImageRequest('swan-image://image/1', project({}, false))).toMatchObject({
      ok: false,
      status: 403,
    });
  });

  it('refuses a generated file that lies outside the project folder', async () => {
    const escaped = project({ 'thumb/1': join(dir, '..', 'elsewhere.webp') });
    expect(await resolveImageRequest('swan-image://thumb/1', escaped)).toMatchObject({
      ok: false,
      status: 403,
    });
    const etc = project({ 'heatmap/1': '/etc/passwd' });
    expect(await resolveImageRequest('swan-image://heatmap/1', etc)).toMatchObject({
      ok: false,
      status: 403,
    });
  });

  it('refuses a generated file inside the folder by name that is a symlink out of it (real paths)', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'swan-outside-'));
    writeFileSync(join(outside, 'secret.webp'), 'secret');
    symlinkSync(join(outside, 'secret.webp'), join(dir, 'thumbs', '2.webp'));
    expect(
      await resolveImageRequest(
        'swan-image://thumb/1',
        project({ 'thumb/1': join(dir, 'thumbs', '2.webp') }),
      ),
    ).toMatchObject({
      ok: false,
      status: 403,
    });
  });
});
