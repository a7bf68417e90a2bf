/**
 * A read-only project folder: a clear error, and nothing lost. Tests run as root here,
 * where permission bits do not stop writes, so the folder is made immutable with chattr;
 * as another user, chmod does the job.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiService } from '../../../src-main/api/service';
import { makePng, tempDir } from './helpers';

function setReadOnly(dir: string, on: boolean): boolean {
  try {
    if (process.getuid?.() === 0) execFileSync('chattr', ['-R', on ? '+i' : '-i', dir], { stdio: 'ignore' });
    else execFileSync('chmod', ['-R', on ? 'a-w' : 'u+w', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('read-only project folder', () => {
  let tmp: ReturnType<typeof tempDir>;
  let api: ApiService;
  let projectDir: string;
  let ids: number[];
  let locked = false;

  beforeEach(async () => {
    tmp = tempDir();
    api = new ApiService({ projectsRoot: join(tmp.dir, 'projects') });
    projectDir = (await api.invoke('project.create', { name: 'RO' })).path;
    const files = [join(tmp.dir, 'a.png'), join(tmp.dir, 'b.png')];
    await makePng(files[0], { seed: 1 });
    await makePng(files[1], { seed: 2 });
    ids = (await api.invoke('import.run', { source: { kind: 'paths', paths: files } })).importedIds;
    await api.invoke('labels.set', { ids: [ids[0]], label: 'good' });
  });
  afterEach(async () => {
    if (locked) setReadOnly(projectDir, false);
    await api.close();
    tmp.cleanup();
  });

  it('opening it gives a clear error and changes nothing', async (ctx) => {
    await api.invoke('project.close', {});
    locked = setReadOnly(projectDir, true);
    if (!locked) return ctx.skip();
    const r = await api.call('project.open', { path: projectDir });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('read_only');
      expect(r.error.message).toContain(projectDir);
      expect(r.error.message).toMatch(/read-only.*make the folder writable/i);
    }
    setReadOnly(projectDir, false);
    locked = false;
    await api.invoke('project.open', { path: projectDir });
    expect((await api.invoke('images.list', {})).items.map((i) => i.label)).toEqual(['good', 'unlabelled']);
  });

  it('a change while it is read-only is refused with a clear error; saved data is intact', async (ctx) => {
    locked = setReadOnly(projectDir, true);
    if (!locked) return ctx.skip();
    const r = await api.call('labels.set', { ids, label: 'defect', className: 'dent' });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('read_only');
      expect(r.error.message).toMatch(/read-only/);
      expect(r.error.message).toContain(projectDir);
    }
    // Reading still works.
    expect((await api.invoke('images.list', {})).total).toBe(2);
    setReadOnly(projectDir, false);
    locked = false;
    await api.invoke('project.close', {});
    await api.invoke('project.open', { path: projectDir });
    const labels = (await api.invoke('images.list', {})).items.map((i) => i.label);
    expect(labels).toEqual(['good', 'unlabelled']);
    // And the project is usable again.
    await api.invoke('labels.set', { ids: [ids[1]], label: 'good' });
    expect((await api.invoke('project.current', {}))?.counts.good).toBe(2);
  });
});
