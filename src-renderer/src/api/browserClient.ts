/**
 * Browser mode: operations are POST /api/<op> with a JSON body; events arrive on one
 * WebSocket. The token the server printed rides in the page URL (?token=...) and is sent
 * with every request.
 */
import type { ApiResult, EventName } from '../../../src-main/api/contract';
import {
  ApiError,
  isErrorShape,
  unwrap,
  type ApiClient,
  type OpInput,
  type OpName,
  type OpOutput,
} from './client';

type Listener = (payload: unknown) => void;

export function readToken(): string {
  const fromUrl = new URLSearchParams(window.location.search).get('token');
  if (fromUrl) {
    sessionStorage.setItem('swan.token', fromUrl);
    return fromUrl;
  }
  return sessionStorage.getItem('swan.token') ?? '';
}

export function createBrowserClient(token: string, origin = window.location.origin): ApiClient {
  const listeners = new Map<EventName, Set<Listener>>();
  let socket: WebSocket | null = null;
  let retryMs = 500;

  function connect(): void {
    const url = new URL('/ws', origin);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('token', token);
    socket = new WebSocket(url);
    socket.onopen = () => {
      retryMs = 500;
    };
    socket.onmessage = (msg) => {
      let parsed: { event?: EventName; payload?: unknown };
      try {
        parsed = JSON.parse(String(msg.data)) as typeof parsed;
      } catch {
        return;
      }
      if (!parsed.event) return;
      for (const fn of listeners.get(parsed.event) ?? []) fn(parsed.payload);
    };
    // A restarted server comes back on the same port: keep trying, backing off.
    socket.onclose = () => {
      socket = null;
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 5000);
    };
  }
  connect();

  return {
    mode: 'browser',
    async call<K extends OpName>(op: K, input: OpInput<K>): Promise<OpOutput<K>> {
      let res: Response;
      try {
        res = await fetch(new URL(`/api/${op}`, origin), {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify(input ?? {}),
        });
      } catch (err) {
        throw new ApiError(
          'network',
          `The Swan Inspector server is not reachable (${(err as Error).message}).`,
        );
      }
      let body: unknown;
      try {
        body = await res.json();
      } catch {
        throw new ApiError('internal', `The server replied ${res.status} without a readable body.`);
      }
      if (typeof body === 'object' && body !== null && 'ok' in body) return unwrap(body as ApiResult<K>);
      if (isErrorShape(body)) throw new ApiError(body.code, body.message);
      if (!res.ok) throw new ApiError('internal', `The server replied ${res.status}.`);
      return body as OpOutput<K>;
    },
    on(event, listener) {
      const set = listeners.get(event) ?? new Set<Listener>();
      listeners.set(event, set);
      const fn = listener as Listener;
      set.add(fn);
      return () => set.delete(fn);
    },
    fileUrl(kind, id) {
      const url = new URL(`/files/${kind}/${id}`, origin);
      url.searchParams.set('token', token);
      return url.pathname + url.search;
    },
  };
}
