/**
 * The server killed (SIGKILL) mid-training, then restarted: the project opens, the run
 * is marked failed, the previous model is still active, labels and scores are intact.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makePng, tempDir, waitFor } from './helpers';

const CHILD = fileURLToPath(new URL('./fixtures/server-child.ts', import.meta.url));

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

    const s2 = await startChild(root, web);
    children.push(s2.proc);
    const reopened = await call(s2, 'project.open', { path: project.path });
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
