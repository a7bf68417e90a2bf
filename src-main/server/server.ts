/**
 * Browser mode: the same API over HTTP + WebSocket, on 127.0.0.1 only, with a random
 * token on every request (header, query or the cookie set from the opening URL).
 *   POST /api/<operation>        JSON body -> ApiResult JSON
 *   GET  /files/<kind>/<imageId> thumb | image | heatmap, only for images of the open project
 *   WS   /ws                     progress events as { event, payload }
 *   GET  /*                      the built renderer
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve, sep } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { fileKinds, type ErrorCode, type FileKind } from '../api/contract';
import { ApiService, type ServiceOptions } from '../api/service';

export interface ServerOptions {
  host?: '127.0.0.1';
  /** 0 or absent: any free port. */
  port?: number;
  /** The built renderer (index.html + assets). */
  staticDir: string;
  projectsRoot?: string;
  stateDir?: string;
  worker?: ServiceOptions['worker'];
  /** Use this service instead of creating one (it is then not closed by close()). */
  service?: ApiService;
  /** Largest request body (default 256 MiB: import.upload carries images as base64). */
  maxBodyBytes?: number;
}

export interface RunningServer {
  url: string;
  token: string;
  service: ApiService;
  close(): Promise<void>;
}

export const TOKEN_COOKIE = 'swan_token';
const MAX_BODY_BYTES = 256 * 1024 * 1024;

/** Sent with every response: the page may load only its own scripts, and nothing is sniffed. */
function securityHeaders(port: number): Record<string, string> {
  return {
    'x-content-type-options': 'nosniff',
    'content-security-policy': [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self' 'unsafe-inline'",
      "img-src 'self' data: blob:",
      `connect-src 'self' ws://127.0.0.1:${port} ws://localhost:${port}`,
      "object-src 'none'",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; '),
    'referrer-policy': 'no-referrer',
  };
}

class BodyTooLarge extends Error {}

const STATUS: Partial<Record<ErrorCode, number>> = {
  invalid_input: 400,
  unknown_operation: 404,
  not_found: 404,
  no_project: 409,
  conflict: 409,
  busy: 409,
  read_only: 403,
  unauthorized: 401,
  too_large: 413,
  io: 500,
  engine: 422,
  internal: 500,
};

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.ttf': 'font/ttf',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
};

function sameToken(given: string | undefined | null, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookieToken(req: IncomingMessage): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === TOKEN_COOKIE) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

/** The token from the Authorization/X-Swan-Token header, the query, or the cookie. */
function requestToken(req: IncomingMessage, url: URL): { token?: string; fromQuery: boolean } {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return { token: auth.slice(7).trim(), fromQuery: false };
  const header = req.headers['x-swan-token'];
  if (typeof header === 'string') return { token: header, fromQuery: false };
  const q = url.searchParams.get('token');
  if (q) return { token: q, fromQuery: true };
  return { token: cookieToken(req), fromQuery: false };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(data);
}

function sendError(res: ServerResponse, code: ErrorCode, message: string): void {
  sendJson(res, STATUS[code] ?? 500, { ok: false, error: { code, message } });
}

/** Reads the body, refusing (BodyTooLarge) as soon as it passes `limit`: never buffers more. */
async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new BodyTooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new BodyTooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function sendFile(
  res: ServerResponse,
  file: string,
  contentType: string,
  cache: string,
): Promise<void> {
  const st = await stat(file);
  res.writeHead(200, { 'content-type': contentType, 'content-length': st.size, 'cache-control': cache });
  await new Promise<void>((ok, fail) => {
    const s = createReadStream(file);
    s.on('error', fail);
    s.on('end', ok);
    s.pipe(res);
  });
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  if (host !== '127.0.0.1') throw new Error('browser mode listens on 127.0.0.1 only');
  const token = randomBytes(32).toString('base64url');
  const staticDir = resolve(opts.staticDir);
  const maxBody = opts.maxBodyBytes ?? MAX_BODY_BYTES;
  const ownService = !opts.service;
  const service =
    opts.service ??
    new ApiService({
      projectsRoot: resolve(opts.projectsRoot ?? join(process.cwd(), 'projects')),
      stateDir: opts.stateDir,
      worker: opts.worker,
    });

  let port = 0;
  /** Refuses requests whose Host is not this server (DNS rebinding). */
  const hostAllowed = (req: IncomingMessage): boolean => {
    const h = req.headers.host;
    return h === `127.0.0.1:${port}` || h === `localhost:${port}`;
  };

  async function serveStatic(res: ServerResponse, pathname: string): Promise<void> {
    let rel: string;
    try {
      rel = decodeURIComponent(pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    let file = resolve(staticDir, `.${rel}`);
    if (file !== staticDir && !file.startsWith(staticDir + sep)) {
      res.writeHead(404).end();
      return;
    }
    let st = await stat(file).catch(() => null);
    if (st?.isDirectory()) {
      file = join(file, 'index.html');
      st = await stat(file).catch(() => null);
    }
    if (!st && !extname(rel)) {
      // Client-side routes fall back to the app shell.
      file = join(staticDir, 'index.html');
      st = await stat(file).catch(() => null);
    }
    if (!st?.isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const isHtml = file.endsWith('.html');
    await sendFile(
      res,
      file,
      MIME[extname(file).toLowerCase()] ?? 'application/octet-stream',
      isHtml ? 'no-store' : 'max-age=3600',
    );
  }

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
      for (const [k, v] of Object.entries(securityHeaders(port))) res.setHeader(k, v);
      if (!hostAllowed(req)) return sendError(res, 'unauthorized', 'unexpected Host header');
      const { token: given, fromQuery } = requestToken(req, url);
      if (!sameToken(given, token)) {
        return sendError(
          res,
          'unauthorized',
          'missing or wrong token: open the URL printed when the server started',
        );
      }
      if (fromQuery) {
        // Later requests from the page (scripts, images) carry the cookie instead of the query.
        res.setHeader(
          'set-cookie',
          `${TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`,
        );
      }

      if (url.pathname.startsWith('/api/')) {
        if (req.method !== 'POST')
          return sendError(res, 'invalid_input', 'API calls are POST requests with a JSON body');
        const op = url.pathname.slice('/api/'.length);
        let payload: unknown;
        try {
          const text = await readBody(req, maxBody);
          payload = text.trim() === '' ? {} : JSON.parse(text);
        } catch (err) {
          if (err instanceof BodyTooLarge) {
            // Answer, then drop the connection: the rest of the body is never read.
            res.setHeader('connection', 'close');
            sendError(res, 'too_large', `${op}: the request body is larger than ${maxBody} bytes`);
            res.on('finish', () => req.destroy());
            return;
          }
          return sendError(
            res,
            'invalid_input',
            `${op}: the body is not valid JSON (${(err as Error).message})`,
          );
        }
        const result = await service.call(op, payload);
        return sendJson(res, result.ok ? 200 : (STATUS[result.error.code] ?? 500), result);
      }

      const m = /^\/files\/([a-z]+)\/(\d{1,15})$/.exec(url.pathname);
      if (url.pathname.startsWith('/files/')) {
        if (req.method !== 'GET' && req.method !== 'HEAD')
          return sendError(res, 'invalid_input', 'files are GET requests');
        if (!m || !(fileKinds as readonly string[]).includes(m[1])) {
          return sendError(
            res,
            'not_found',
            'files are served by image id only: /files/<thumb|image|heatmap>/<id>',
          );
        }
        const served = await service.resolveFile(m[1] as FileKind, Number(m[2]));
        if (!served) return sendError(res, 'not_found', `no ${m[1]} for image ${m[2]} in the open project`);
        if (served.body) {
          res.writeHead(200, {
            'content-type': served.contentType,
            'content-length': served.body.length,
            'cache-control': 'no-store',
          });
          return void res.end(served.body);
        }
        return sendFile(res, served.file!, served.contentType, 'no-cache');
      }

      if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 'invalid_input', 'not found');
      return serveStatic(res, url.pathname);
    })().catch((err: unknown) => {
      if (!res.headersSent) sendError(res, 'internal', err instanceof Error ? err.message : String(err));
      else res.destroy();
    });
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    const { token: given } = requestToken(req, url);
    if (url.pathname !== '/ws' || !hostAllowed(req) || !sameToken(given, token)) {
      socket.write('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  const clients = new Set<WebSocket>();
  wss.on('connection', (ws) => {
    clients.add(ws);
    ws.on('close', () => clients.delete(ws));
    ws.on('error', () => clients.delete(ws));
  });
  const unsubscribe = service.on((e) => {
    const msg = JSON.stringify(e);
    for (const ws of clients) if (ws.readyState === ws.OPEN) ws.send(msg);
  });

  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', fail);
      ok();
    });
  });
  port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}/?token=${token}`,
    token,
    service,
    async close() {
      unsubscribe();
      for (const ws of clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
      if (ownService) await service.close();
    },
  };
}
