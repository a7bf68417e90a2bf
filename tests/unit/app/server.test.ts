import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { networkInterfaces } from 'node:os';
import { join, relative } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startServer, type RunningServer } from '../../../src-main/server/server';
import { makeJpeg, makePng, tempDir, waitFor } from './helpers';

/** A raw HTTP request (fetch would normalise paths and forbid setting Host). */
function raw(
  port: number,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((ok, fail) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          ok({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      },
    );
    req.on('error', fail);
    req.end(opts.body);
  });
}

describe('browser-mode server', () => {
  let tmp: ReturnType<typeof tempDir>;
  let srv: RunningServer;
  let port: number;
  let auth: Record<string, string>;

  const api = async (op: string, payload: unknown, headers = auth) => {
    const r = await raw(port, `/api/${op}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(payload),
    });
    return {
      status: r.status,
      json: JSON.parse(r.body.toString()) as {
        ok: boolean;
        data?: { importedIds: number[] };
        error?: { code: string; message: string };
      },
    };
  };

  beforeEach(async () => {
    tmp = tempDir();
    const web = join(tmp.dir, 'web');
    mkdirSync(join(web, 'assets'), { recursive: true });
    writeFileSync(join(web, 'index.html'), '<!doctype html><title>Swan</title>');
    writeFileSync(join(web, 'assets', 'app.js'), 'console.log(1)');
    srv = await startServer({ staticDir: web, projectsRoot: join(tmp.dir, 'projects') });
    port = Number(new URL(srv.url).port);
    auth = { authorization: `Bearer ${srv.token}` };
  });
  afterEach(async () => {
    await srv.close();
    tmp.cleanup();
  });

  it('listens on 127.0.0.1 only, with a long random token in the printed URL', async () => {
    const url = new URL(srv.url);
    expect(url.hostname).toBe('127.0.0.1');
    expect(url.searchParams.get('token')).toBe(srv.token);
    expect(srv.token.length).toBeGreaterThanOrEqual(40);
    await expect(startServer({ staticDir: tmp.dir, host: '0.0.0.0' as '127.0.0.1' })).rejects.toThrow(
      /127\.0\.0\.1 only/,
    );
    // Not reachable on any other interface address of this machine.
    const others = Object.values(networkInterfaces())
      .flat()
      .filter((i) => i && i.family === 'IPv4' && !i.internal)
      .map((i) => i!.address);
    for (const address of others) {
      const err = await new Promise<NodeJS.ErrnoException | null>((ok) => {
        const req = request({ host: address, port, path: '/', timeout: 2000 }, () => ok(null));
        req.on('error', (e) => ok(e));
        req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
        req.end();
      });
      expect(err?.code, address).toMatch(/ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH/);
    }
  });

  it('refuses every request without the right token (HTTP 401)', async () => {
    for (const path of ['/', '/assets/app.js', '/files/thumb/1', '/ws']) {
      expect((await raw(port, path)).status, path).toBe(401);
    }
    expect((await api('project.current', {}, {})).status).toBe(401);
    const wrong = await api('project.current', {}, { authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
    expect(wrong.json.error?.code).toBe('unauthorized');
    expect((await raw(port, `/?token=${srv.token.slice(0, -1)}x`)).status).toBe(401);
    // A page from another origin pointing a DNS name at 127.0.0.1 carries another Host.
    expect((await raw(port, `/?token=${srv.token}`, { headers: { host: 'evil.example:80' } })).status).toBe(
      401,
    );
  });

  it('accepts the token as a header, in the query (setting a cookie), or as that cookie', async () => {
    const q = await raw(port, `/?token=${srv.token}`);
    expect(q.status).toBe(200);
    expect(q.body.toString()).toContain('<title>Swan</title>');
    const cookie = String(q.headers['set-cookie']).split(';')[0];
    expect(cookie).toBe(`swan_token=${srv.token}`);
    const asset = await raw(port, '/assets/app.js', { headers: { cookie } });
    expect(asset.status).toBe(200);
    expect(asset.headers['content-type']).toMatch(/javascript/);
    expect((await raw(port, '/assets/app.js', { headers: { 'x-swan-token': srv.token } })).status).toBe(200);
    const r = await api('project.current', {});
    expect(r).toEqual({ status: 200, json: { ok: true, data: null } });
  });

  it('maps API errors to HTTP statuses with the typed error body', async () => {
    const bad = await api('images.get', { id: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({
      code: 'invalid_input',
      message: expect.stringMatching(/images\.get: id/),
    });
    expect((await api('nope.op', {})).status).toBe(404);
    expect((await api('images.list', {})).status).toBe(409);
    const notJson = await raw(port, '/api/project.current', { method: 'POST', headers: auth, body: '{oops' });
    expect(notJson.status).toBe(400);
    expect((await raw(port, '/api/project.current', { headers: auth })).status).toBe(400);
  });

  it('refuses a WebSocket without the token and streams events to one with it', async () => {
    const refused = await new Promise<string>((ok) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
      ws.on('unexpected-response', (_req, res) => ok(`status ${res.statusCode}`));
      ws.on('error', (e) => ok(`error ${e.message}`));
      ws.on('open', () => ok('open'));
    });
    expect(refused).toMatch(/401/);

    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${srv.token}`);
    const got: { event: string; payload: unknown }[] = [];
    ws.on('message', (m) => got.push(JSON.parse(String(m))));
    await new Promise((ok, fail) => {
      ws.on('open', ok);
      ws.on('error', fail);
    });
    await api('project.create', { name: 'WS' });
    await waitFor(() => got.some((e) => e.event === 'project.changed'), 'an event over the socket');
    ws.close();
  });

  it('serves files only for images of the open project, by id, never by path', async () => {
    const created = await api('project.create', { name: 'Files' });
    expect(created.status).toBe(200);
    const img = join(tmp.dir, 'pic.png');
    await makePng(img, { seed: 3 });
    const imp = await api('import.run', { source: { kind: 'paths', paths: [img] } });
    const id = imp.json.data!.importedIds[0];

    const image = await raw(port, `/files/image/${id}`, { headers: auth });
    expect(image.status).toBe(200);
    expect(image.headers['content-type']).toBe('image/png');
    expect(image.body.equals(readFileSync(img))).toBe(true);
    const thumb = await raw(port, `/files/thumb/${id}`, { headers: auth });
    expect(thumb.status).toBe(200);
    expect(thumb.headers['content-type']).toBe('image/jpeg');
    // Not scored yet: no heatmap.
    expect((await raw(port, `/files/heatmap/${id}`, { headers: auth })).status).toBe(404);

    const refused = [
      `/files/image/${id + 1}`,
      '/files/image/0',
      '/files/image/-1',
      `/files/image/${encodeURIComponent(img)}`,
      '/files/image/..%2F..%2F..%2Fetc%2Fpasswd',
      '/files/image/1/../../../../etc/passwd',
      `/files/source/${id}`,
      '/..%2F..%2F..%2F..%2Fetc%2Fpasswd',
      '/assets/..%2F..%2F..%2F..%2Fetc%2Fpasswd',
    ];
    for (const path of refused) {
      const r = await raw(port, path, { headers: auth });
      expect(r.body.toString(), path).not.toMatch(/root:/);
      if (path.startsWith('/files/') && !path.includes('/../')) expect(r.status, path).toBe(404);
    }
    // Another project open: the first project's image is no longer served.
    await api('project.create', { name: 'Other' });
    expect((await raw(port, `/files/image/${id}`, { headers: auth })).status).toBe(404);
    expect((await raw(port, `/files/thumb/${id}`, { headers: auth })).status).toBe(404);
  });

  describe('files: one containment rule, content type from the bytes (issue 13, finding 2)', () => {
    /** Imports one image into a new project; returns its id and the project folder. */
    async function importOne(name: string, file: string): Promise<{ id: number; dir: string }> {
      const created = await api('project.create', { name });
      const imp = await api('import.run', { source: { kind: 'paths', paths: [file] } });
      return {
        id: imp.json.data!.importedIds[0],
        dir: (created.json as { data?: { path: string } }).data!.path,
      };
    }
    /** Edits the project's database while it is closed (the app holds it exclusively when open). */
    async function tamper(dir: string, sql: string, ...params: unknown[]): Promise<void> {
      await api('project.close', {});
      const db = new Database(join(dir, 'project.sqlite'));
      db.prepare(sql).run(...params);
      db.close();
      await api('project.open', { path: dir });
    }

    it('a tampered database row cannot serve a file from outside the project', async () => {
      const img = join(tmp.dir, 'pic.png');
      await makePng(img, { seed: 4 });
      const { id, dir } = await importOne('Tampered', img);
      const secret = join(tmp.dir, 'secret.jpg');
      await makeJpeg(secret);
      // thumbs/<sha>.jpg with sha = ../../secret resolves to the secret file.
      await tamper(
        dir,
        'UPDATE images SET sha256 = ? WHERE id = ?',
        relative(join(dir, 'thumbs'), join(tmp.dir, 'secret')),
        id,
      );
      expect((await raw(port, `/files/thumb/${id}`, { headers: auth })).status).toBe(404);
      // The original's path pointed elsewhere: its content is not the imported one.
      await tamper(dir, 'UPDATE images SET sha256 = ?, path = ? WHERE id = ?', 'a'.repeat(64), secret, id);
      expect((await raw(port, `/files/image/${id}`, { headers: auth })).status).toBe(404);
    });

    it('a thumbnail swapped for a symlink out of the project is refused (real paths)', async () => {
      const img = join(tmp.dir, 'pic.png');
      await makePng(img, { seed: 5 });
      const { id, dir } = await importOne('Symlinked', img);
      const outside = join(tmp.dir, 'outside.jpg');
      await makeJpeg(outside);
      const [thumb] = readdirSync(join(dir, 'thumbs'));
      rmSync(join(dir, 'thumbs', thumb));
      symlinkSync(outside, join(dir, 'thumbs', thumb));
      const r = await raw(port, `/files/thumb/${id}`, { headers: auth });
      expect(r.status).toBe(404);
      expect(r.body.equals(readFileSync(outside))).toBe(false);
    });

    it('the content type comes from the bytes, a swapped original is not served, nosniff and a CSP are sent', async () => {
      // JPEG bytes under a .png name: served as what they are.
      const misnamed = join(tmp.dir, 'photo.png');
      await makeJpeg(misnamed, 40);
      const { id } = await importOne('Types', misnamed);
      const r = await raw(port, `/files/image/${id}`, { headers: auth });
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toBe('image/jpeg');
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(String(r.headers['content-security-policy'])).toMatch(
        /default-src 'self'.*frame-ancestors 'none'/,
      );
      const page = await raw(port, `/?token=${srv.token}`);
      expect(page.headers['x-content-type-options']).toBe('nosniff');
      expect(String(page.headers['content-security-policy'])).toMatch(/script-src 'self'/);
      // Swapped after import for other content: not served as the imported image.
      writeFileSync(misnamed, '<html><script>alert(1)</script></html>');
      expect((await raw(port, `/files/image/${id}`, { headers: auth })).status).toBe(404);
    });
  });

  describe('body limits (issue 13, finding 7)', () => {
    it('answers 413 from Content-Length, before reading the body', async () => {
      const r = await new Promise<{ status: number; body: string }>((ok, fail) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            path: '/api/project.current',
            method: 'POST',
            headers: {
              ...auth,
              'content-type': 'application/json',
              'content-length': String(270 * 1024 ** 2),
            },
          },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', fail);
        // Only a few bytes of the announced 270 MB are ever sent.
        req.write('{"a":');
      });
      expect(r.status).toBe(413);
      expect(JSON.parse(r.body).error).toMatchObject({
        code: 'too_large',
        message: expect.stringMatching(/larger than/),
      });
    }, 15_000);

    it('answers 413 while streaming a body without Content-Length past the limit', async () => {
      const small = await startServer({
        staticDir: tmp.dir,
        projectsRoot: join(tmp.dir, 'p2'),
        maxBodyBytes: 1024 ** 2,
      });
      try {
        const sport = Number(new URL(small.url).port);
        const status = await new Promise<number>((ok, fail) => {
          const req = request(
            {
              host: '127.0.0.1',
              port: sport,
              path: '/api/project.current',
              method: 'POST',
              headers: { authorization: `Bearer ${small.token}`, 'transfer-encoding': 'chunked' },
            },
            (res) => {
              res.resume();
              ok(res.statusCode ?? 0);
            },
          );
          req.on('error', (e: NodeJS.ErrnoException) =>
            e.code === 'ECONNRESET' || e.code === 'EPIPE' ? undefined : fail(e),
          );
          const chunk = Buffer.alloc(64 * 1024, 0x20);
          let sent = 0;
          const pump = () => {
            while (sent < 8 * 1024 ** 2 && req.write(chunk)) sent += chunk.length;
            if (sent < 8 * 1024 ** 2) req.once('drain', () => ((sent += chunk.length), pump()));
          };
          pump();
        });
        expect(status).toBe(413);
        // The server still answers afterwards.
        expect(
          (
            await raw(sport, '/api/project.current', {
              method: 'POST',
              headers: { authorization: `Bearer ${small.token}` },
              body: '{}',
            })
          ).status,
        ).toBe(200);
      } finally {
        await small.close();
      }
    }, 15_000);
  });
});
