import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { ApiErrorShape } from '../../../src-main/api/contract';
import { startServer, type RunningServer } from '../../../src-main/server/server';
import { tempDir, waitFor } from '../app/helpers';
import { buildProject, type SyntheticImage } from './helpers';

/** Replies are checked field by field below; their exact types are the contract's. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

/** Browser mode: the new operations over HTTP, progress over the WebSocket. */
describe('reports, evaluation and models in browser mode', () => {
  let tmp: ReturnType<typeof tempDir>;
  let srv: RunningServer;
  const post = async (op: string, body: unknown) => {
    const res = await fetch(`${srv.url.split('?')[0].replace(/\/$/, '')}/api/${op}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${srv.token}` },
      body: JSON.stringify(body),
    });
    return {
      status: res.status,
      json: (await res.json()) as { ok: boolean; data?: Any; error?: ApiErrorShape },
    };
  };

  beforeEach(async () => {
    tmp = tempDir('swan-report-http-');
    const web = join(tmp.dir, 'web');
    mkdirSync(web, { recursive: true });
    writeFileSync(join(web, 'index.html'), '<!doctype html><title>Swan</title>');
    srv = await startServer({ staticDir: web, projectsRoot: join(tmp.dir, 'projects') });
  });
  afterEach(async () => {
    await srv.close();
    tmp.cleanup();
  });

  it('exports a report with progress events, evaluates, sets a catch target, lists batches', async () => {
    const images: SyntheticImage[] = Array.from({ length: 30 }, (_, k) => ({
      name: `img-${k}.jpg`,
      batch: k < 20 ? 'monday' : 'tuesday',
      total: k / 30,
      label: k % 7 === 0 ? 'defect' : k % 3 === 0 ? 'good' : undefined,
      thumb: true,
    }));
    const built = await buildProject(tmp.dir, images, { threshold: 0.5 });
    built.store.close();
    expect((await post('project.open', { path: join(tmp.dir, 'project') })).status).toBe(200);

    const ws = new WebSocket(
      `${srv.url.replace(/^http/, 'ws').split('?')[0].replace(/\/$/, '')}/ws?token=${srv.token}`,
    );
    const got: { event: string; payload: { format: string; done: number; total: number } }[] = [];
    ws.on('message', (m) => got.push(JSON.parse(String(m))));
    await new Promise((ok, fail) => {
      ws.on('open', ok);
      ws.on('error', fail);
    });

    const batches = await post('images.batches', {});
    expect(batches.json.data.batches.map((b: { name: string; count: number }) => [b.name, b.count])).toEqual([
      ['monday', 20],
      ['tuesday', 10],
    ]);
    const r = await post('report.export', { batch: 'tuesday', format: 'both', outDir: join(tmp.dir, 'out') });
    expect(r.status).toBe(200);
    expect(r.json.data.counts).toMatchObject({ inspected: 10, flagged: 10 });
    expect(readFileSync(r.json.data.pdf).subarray(0, 5).toString()).toBe('%PDF-');
    await waitFor(
      () =>
        got.some(
          (e) =>
            e.event === 'report.progress' && e.payload.format === 'pdf' && e.payload.done === e.payload.total,
        ),
      'pdf progress',
    );
    ws.close();

    const ev = await post('evaluate.run', { batch: null });
    expect(ev.status).toBe(200);
    expect(ev.json.data.models[0].total.aucRoc).toBeGreaterThan(0);
    const t = await post('threshold.set', { catchRate: 1 });
    expect(t.json.data.rates.catchRate).toBe(1);

    const denied = await post('report.export', { format: 'pdf', outDir: '/sys/swan-report-http' });
    expect(denied.status).toBe(403);
    expect(denied.json.error!.code).toBe('read_only');
  });
});
