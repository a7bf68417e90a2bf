/**
 * The app killed (SIGKILL, a child process) mid-training, mid-save, mid-import and mid-report,
 * then restarted: the database passes PRAGMA integrity_check, the project opens with its
 * labels and active model, and no temporary or orphan file remains (issue 13).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makePng, tempDir, waitFor } from '../unit/app/helpers';

const CHILD = fileURLToPath(new URL('../unit/app/fixtures/server-child.ts', import.meta.url));
const SAVE_CHILD = fileURLToPath(new URL('./save-child.ts', import.meta.url));

interface Server {
  proc: ChildProcess;
  base: string;
  token: string;
}

function startChild(projectsRoot: string, staticDir: string): Promise<Server> {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, projectsRoot, staticDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((ok, fail) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error(`server did not start: ${err}`)), 30_000);
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /SWAN_URL=(\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        const u = new URL(m[1]);
        ok({ proc, base: `${u.protocol}//${u.host}`, token: u.searchParams.get('token')! });
      }
    });
    proc.on('exit', (code) => fail(new Error(`server exited (${code}): ${err}`)));
  });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- replies are loose JSON; each test checks the fields it reads
async function call(s: Server, op: string, payload: unknown = {}): Promise<any> {
  const r = await fetch(`${s.base}/api/${op}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(payload),
  });
  const body = (await r.json()) as { ok: boolean; data?: unknown; error?: { message: string } };
  if (!body.ok) throw new Error(`${op}: ${body.error?.message}`);
  return body.data;
}

describe('server killed mid-training', () => {
  let tmp: ReturnType<typeof tempDir>;
  let children: ChildProcess[] = [];
  beforeEach(() => {
    tmp = tempDir();
    children = [];
  });
  afterEach(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    tmp.cleanup();
  });

  it('restarts with the project intact and the previous model active', async () => {
    const web = join(tmp.dir, 'web');
    mkdirSync(web);
    writeFileSync(join(web, 'index.html'), '<!doctype html>');
    const root = join(tmp.dir, 'projects');
    const files: string[] = [];
    for (let k = 0; k < 5; k++) {
      const f = join(tmp.dir, `i${k}.png`);
      await makePng(f, { seed: k + 1, brightness: 60 + 30 * k });
      files.push(f);
    }

    const s1 = await startChild(root, web);
    children.push(s1.proc);
    const project = await call(s1, 'project.create', { name: 'Killed' });
    const { importedIds: ids } = await call(s1, 'import.run', { source: { kind: 'paths', paths: files } });
    await call(s1, 'labels.set', { ids: ids.slice(0, 3), label: 'good' });
    await call(s1, 'labels.set', { ids: [ids[4]], label: 'defect', className: 'spot' });
    await call(s1, 'training.start', { settings: { steps: 2 } });
    await waitFor(async () => (await call(s1, 'models.active')).model !== null, 'first model');
    await waitFor(
      async () =>
        (await call(s1, 'scoring.status')).unscored === 0 && (await call(s1, 'scoring.status')).job === null,
      'scoring',
    );
    const first = (await call(s1, 'models.active')).model;
    const scoresBefore = (await call(s1, 'images.list', { sort: 'imported' })).items.map(
      (i: { score: number }) => i.score,
    );
    expect(scoresBefore.every((s: number | null) => typeof s === 'number')).toBe(true);

    const { runId } = await call(s1, 'training.start', { settings: { steps: 1000 } });
    await waitFor(
      async () => ((await call(s1, 'training.status')).progress?.step ?? 0) >= 2,
      'second run to be training',
    );
    expect(existsSync(join(project.path, 'models', `run-${runId}`))).toBe(false);
    s1.proc.kill('SIGKILL');
    await new Promise((r) => s1.proc.once('exit', r));

    expect(integrity(project.path)).toBe('ok');
    const s2 = await startChild(root, web);
    children.push(s2.proc);
    const reopened = await call(s2, 'project.open', { path: project.path });
    expect(leftovers(project.path, 5)).toEqual([]);
    expect(reopened).toMatchObject({
      imageCount: 5,
      counts: { good: 3, defect: 1, unlabelled: 1 },
      activeModelId: first.id,
    });
    expect((await call(s2, 'models.active')).model).toMatchObject({ id: first.id, version: 1 });
    expect((await call(s2, 'models.list')).models).toHaveLength(1);
    const runs = (await call(s2, 'training.runs')).runs;
    expect(runs[0]).toMatchObject({
      id: runId,
      status: 'failed',
      error: expect.stringMatching(/interrupted/),
    });
    expect(runs[1]).toMatchObject({ status: 'done', modelId: first.id });
    const scoresAfter = (await call(s2, 'images.list', { sort: 'imported' })).items.map(
      (i: { score: number }) => i.score,
    );
    expect(scoresAfter).toEqual(scoresBefore);
    expect(readdirSync(join(project.path, 'models')).filter((d) => d.startsWith('run-'))).toEqual([
      `run-${first.runId}`,
    ]);
    // And it trains again.
    await call(s2, 'training.start', { settings: { steps: 1 } });
    await waitFor(
      async () => (await call(s2, 'models.active')).model?.version === 2,
      'a new model after restart',
    );
    s2.proc.kill('SIGTERM');
  });
});

/** Checked with the app stopped: SQLite recovers the WAL on open, then must find no damage. */
function integrity(projectDir: string): string {
  const db = new Database(join(projectDir, 'project.sqlite'));
  try {
    return db.pragma('integrity_check', { simple: true }) as string;
  } finally {
    db.close();
  }
}

/** Files a crash may leave: temp model folders, orphan thumbnails, half-written exports. */
function leftovers(projectDir: string, imageCount: number, outDir?: string): string[] {
  const models = readdirSync(join(projectDir, 'models')).filter(
    (d) => d.startsWith('.') || /tmp|old/.test(d),
  );
  const thumbs = readdirSync(join(projectDir, 'thumbs'));
  const extra = thumbs.length > imageCount ? [`${thumbs.length - imageCount} orphan thumbnail(s)`] : [];
  const parts = outDir && existsSync(outDir) ? readdirSync(outDir).filter((f) => /\.part-/.test(f)) : [];
  return [...models, ...thumbs.filter((t) => /tmp/.test(t)), ...extra, ...parts];
}

async function killed(proc: ChildProcess): Promise<void> {
  proc.kill('SIGKILL');
  if (proc.exitCode === null && proc.signalCode === null) await new Promise((r) => proc.once('exit', r));
}

describe('the app killed mid-operation (tests/faults)', () => {
  let tmp: ReturnType<typeof tempDir>;
  let children: ChildProcess[] = [];
  let web: string;
  let root: string;
  beforeEach(() => {
    tmp = tempDir('swan-kill-');
    children = [];
    web = join(tmp.dir, 'web');
    mkdirSync(web);
    writeFileSync(join(web, 'index.html'), '<!doctype html>');
    root = join(tmp.dir, 'projects');
  });
  afterEach(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    tmp.cleanup();
  });

  async function images(n: number, sub: string): Promise<string> {
    const dir = join(tmp.dir, sub);
    mkdirSync(dir, { recursive: true });
    for (let k = 0; k < n; k++)
      await makePng(join(dir, `i${String(k).padStart(3, '0')}.png`), {
        seed: k + 1,
        size: 24,
        brightness: 50 + (k % 20) * 8,
      });
    return dir;
  }

  /** A project with 12 images (labels on 8), one trained and scored model. */
  async function project(s: Server): Promise<{ path: string; active: number; counts: unknown }> {
    const p = await call(s, 'project.create', { name: 'Faults' });
    const { importedIds: ids } = await call(s, 'import.run', {
      source: { kind: 'paths', paths: [await images(12, 'base')] },
    });
    await call(s, 'labels.set', { ids: ids.slice(0, 7), label: 'good' });
    await call(s, 'labels.set', { ids: [ids[11]], label: 'defect', className: 'spot' });
    await call(s, 'training.start', { settings: { steps: 2 } });
    await waitFor(async () => (await call(s, 'models.active')).model !== null, 'first model');
    await waitFor(async () => (await call(s, 'scoring.status')).job === null, 'scoring');
    const info = await call(s, 'project.current');
    return { path: p.path, active: info.activeModelId, counts: info.counts };
  }

  async function restart(path: string): Promise<{ s: Server; info: any }> {
    expect(integrity(path)).toBe('ok');
    const s = await startChild(root, web);
    children.push(s.proc);
    return { s, info: await call(s, 'project.open', { path }) };
  }

  it('during an import: whole chunks recorded, earlier labels kept, no orphan thumbnails', async () => {
    const s1 = await startChild(root, web);
    children.push(s1.proc);
    const p = await project(s1);
    const more = await images(150, 'more');
    void call(s1, 'import.run', { source: { kind: 'paths', paths: [more] } }).catch(() => undefined);
    await waitFor(
      async () => (await call(s1, 'project.current')).imageCount >= 20,
      'the import to be under way',
    );
    await killed(s1.proc);
    const { info } = await restart(p.path);
    expect(info.imageCount).toBeGreaterThanOrEqual(20);
    expect(info.imageCount).toBeLessThan(162);
    expect((info.imageCount - 12) % 8).toBe(0);
    expect(info.counts).toMatchObject({ good: 7, defect: 1 });
    expect(info.activeModelId).toBe(p.active);
    expect(leftovers(p.path, info.imageCount)).toEqual([]);
  });

  it('during a report export: the half-written report files are removed on the next open', async () => {
    const s1 = await startChild(root, web);
    children.push(s1.proc);
    const p = await project(s1);
    const out = join(tmp.dir, 'reports');
    // Slow the export down to kill it mid-write: many images in the PDF.
    await call(s1, 'import.run', { source: { kind: 'paths', paths: [await images(150, 'batch')] } });
    await call(s1, 'scoring.start', { scope: 'unscored' });
    await waitFor(async () => (await call(s1, 'scoring.status')).job === null, 'scoring');
    void call(s1, 'report.export', { format: 'both', outDir: out }).catch(() => undefined);
    await waitFor(
      () => existsSync(out) && readdirSync(out).some((f) => /\.part-/.test(f)),
      'a report being written',
      20_000,
    );
    await killed(s1.proc);
    const { info } = await restart(p.path);
    expect(info.cleanedUp?.some((f: string) => /\.part-/.test(f))).toBe(true);
    expect(info.activeModelId).toBe(p.active);
    expect(info.counts).toMatchObject({ good: 7, defect: 1 });
    expect(leftovers(p.path, info.imageCount, out)).toEqual([]);
  });

  it('during a model save: the temporary model folder is removed, the run failed, the old model active', async () => {
    const s1 = await startChild(root, web);
    children.push(s1.proc);
    const p = await project(s1);
    await killed(s1.proc);
    // A run recorded as training, then the engine's real saveModel writing 256 MB into it.
    const db = new Database(join(p.path, 'project.sqlite'));
    const runId = Number(
      db
        .prepare("INSERT INTO training_runs (status, started_at, settings) VALUES ('running', ?, '{}')")
        .run(new Date().toISOString()).lastInsertRowid,
    );
    db.close();
    const saver = spawn(process.execPath, ['--import', 'tsx', SAVE_CHILD, p.path, String(runId)], {
      stdio: 'ignore',
    });
    children.push(saver);
    const models = join(p.path, 'models');
    await waitFor(
      () => readdirSync(models).some((d) => d.startsWith(`.run-${runId}.tmp-`)),
      'the save to be under way',
      30_000,
    );
    await killed(saver);
    expect(readdirSync(models).some((d) => d.startsWith('.'))).toBe(true);
    const { s, info } = await restart(p.path);
    expect(info.activeModelId).toBe(p.active);
    expect(info.counts).toEqual(p.counts);
    expect((await call(s, 'training.runs')).runs[0]).toMatchObject({ id: runId, status: 'failed' });
    expect(leftovers(p.path, info.imageCount)).toEqual([]);
  });
});
