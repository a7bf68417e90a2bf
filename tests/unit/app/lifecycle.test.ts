/**
 * Project close/switch with long operations in flight, leftovers removed on open, and a
 * user's activation during training kept (issue 13, findings 4, 5, 6).
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AnyEvent, EventPayload } from '../../../src-main/api/contract';
import { ApiService } from '../../../src-main/api/service';
import { FAKE_ENGINE, makePng, tempDir, waitFor } from './helpers';

describe('project lifecycle', () => {
  let tmp: ReturnType<typeof tempDir>;
  let api: ApiService;
  let events: AnyEvent[];

  beforeEach(() => {
    tmp = tempDir('swan-life-');
    api = new ApiService({ projectsRoot: join(tmp.dir, 'projects'), worker: { engineModule: FAKE_ENGINE } });
    events = [];
    api.on((e) => events.push(e));
  });
  afterEach(async () => {
    await api.close();
    tmp.cleanup();
  });

  async function pngs(n: number, dir = join(tmp.dir, 'src')): Promise<string[]> {
    mkdirSync(dir, { recursive: true });
    const files: string[] = [];
    for (let k = 0; k < n; k++) {
      const f = join(dir, `i${String(k).padStart(3, '0')}.png`);
      await makePng(f, { seed: k + 1, size: 24, brightness: 60 + (k % 10) * 5 });
      files.push(f);
    }
    return files;
  }

  it('closing the project during an import stops it cleanly; reopening finds whole chunks, no leftovers', async () => {
    const info = await api.invoke('project.create', { name: 'Close mid-import' });
    await pngs(200);
    const run = api.call('import.run', { source: { kind: 'paths', paths: [join(tmp.dir, 'src')] } });
    await waitFor(
      () => events.some((e) => e.event === 'import.progress' && e.payload.done >= 20),
      'the import to be under way',
    );
    expect(await api.invoke('project.close', {})).toEqual({ closed: true });
    const r = await run;
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('no_project');
      expect(r.error.message).toMatch(
        /import was stopped because the project was closed: \d+ of 200 files were recorded/,
      );
      expect(r.error.message).not.toMatch(/database connection is not open/);
    }
    const reopened = await api.invoke('project.open', { path: info.path });
    expect(reopened.imageCount % 8).toBe(0);
    expect(reopened.imageCount).toBeLessThan(200);
    // Every thumbnail belongs to a recorded image.
    expect(readdirSync(join(info.path, 'thumbs')).length).toBe(reopened.imageCount);
    const db = api as unknown as { store: { db: Database.Database } };
    expect(db.store.db.pragma('integrity_check', { simple: true })).toBe('ok');
  });

  it('switching projects during a report export stops it and leaves no temporary report files', async () => {
    await api.invoke('project.create', { name: 'Report' });
    const ids = (await api.invoke('import.run', { source: { kind: 'paths', paths: await pngs(40) } }))
      .importedIds;
    await api.invoke('labels.set', { ids: ids.slice(0, 30), label: 'good' });
    const { runId } = await api.invoke('training.start', { settings: { steps: 2 } });
    await waitFor(
      () => events.some((e) => e.event === 'training.finished' && e.payload.runId === runId),
      'training',
    );
    await waitFor(() => events.some((e) => e.event === 'scoring.finished'), 'scoring');
    const out = join(tmp.dir, 'reports');
    const exp = api.call('report.export', { format: 'both', outDir: out });
    await waitFor(() => events.some((e) => e.event === 'report.progress'), 'the export to be under way');
    await api.invoke('project.create', { name: 'Other' });
    const r = await exp;
    // Either it finished before the switch, or it stopped and said why; never half files.
    if (!r.ok) expect(r.error.message).toMatch(/report export was stopped: the project was closed/);
    const left = existsSync(out) ? readdirSync(out) : [];
    expect(left.filter((f) => /\.part-/.test(f))).toEqual([]);
  });

  it('on open, removes temporary and orphan folders and files, and reports them', async () => {
    const info = await api.invoke('project.create', { name: 'Leftovers' });
    const ids = (await api.invoke('import.run', { source: { kind: 'paths', paths: await pngs(4) } }))
      .importedIds;
    await api.invoke('labels.set', { ids, label: 'good' });
    const { runId } = await api.invoke('training.start', { settings: { steps: 2 } });
    await waitFor(
      () => events.some((e) => e.event === 'training.finished' && e.payload.runId === runId),
      'training',
    );
    await waitFor(() => events.some((e) => e.event === 'scoring.finished'), 'scoring');
    await api.invoke('project.close', {});
    const models = join(info.path, 'models');
    const kept = readdirSync(models);
    const junk = [
      join(models, '.run-7.tmp-123-abcd1234'),
      join(models, '.import-mk2x-abc123'),
      join(models, 'imported-mk2x-def456'),
      join(models, 'run-9'),
    ];
    for (const d of junk) {
      mkdirSync(d);
      writeFileSync(join(d, 'manifest.json'), '{}');
    }
    writeFileSync(join(info.path, 'thumbs', `${'d'.repeat(64)}.jpg`), 'orphan thumbnail');
    writeFileSync(join(info.path, 'thumbs', `${'e'.repeat(64)}.jpg.tmp-1-abc`), 'half thumbnail');
    const thumbsBefore = readdirSync(join(info.path, 'thumbs')).length;

    const opened = await api.invoke('project.open', { path: info.path });
    expect(opened.cleanedUp?.sort()).toEqual(
      [
        'models/.run-7.tmp-123-abcd1234',
        'models/.import-mk2x-abc123',
        'models/imported-mk2x-def456',
        'models/run-9',
        `thumbs/${'d'.repeat(64)}.jpg`,
        `thumbs/${'e'.repeat(64)}.jpg.tmp-1-abc`,
      ].sort(),
    );
    expect(readdirSync(models)).toEqual(kept);
    expect(readdirSync(join(info.path, 'thumbs')).length).toBe(thumbsBefore - 2);
    expect((await api.invoke('models.active', {})).model).not.toBeNull();
  });

  it('an activation during training is kept when the run finishes (issue 13, finding 6)', async () => {
    await api.invoke('project.create', { name: 'Activate' });
    const ids = (await api.invoke('import.run', { source: { kind: 'paths', paths: await pngs(6) } }))
      .importedIds;
    await api.invoke('labels.set', { ids, label: 'good' });
    const train = async (steps: number) => {
      const { runId } = await api.invoke('training.start', { settings: { steps } });
      return runId;
    };
    const finished = (runId: number) =>
      events.find((e) => e.event === 'training.finished' && e.payload.runId === runId)?.payload as
        EventPayload<'training.finished'> | undefined;
    const scored = () => events.filter((e) => e.event === 'scoring.finished').length;
    for (const steps of [2, 2]) {
      const before = scored();
      const runId = await train(steps);
      await waitFor(() => finished(runId) !== undefined, 'training');
      await waitFor(() => scored() > before, 'scoring');
    }
    const v1 = (await api.invoke('models.list', {})).models.find((m) => m.version === 1)!;
    const run3 = await train(25);
    await waitFor(
      () => events.some((e) => e.event === 'training.progress' && e.payload.runId === run3),
      'run 3',
    );
    expect((await api.invoke('models.activate', { id: v1.id })).active).toBe(true);
    await waitFor(() => finished(run3) !== undefined, 'run 3 to finish');
    expect(finished(run3)).toMatchObject({ status: 'done', version: 3 });
    expect((await api.invoke('models.active', {})).model?.version).toBe(1);
  });
});
