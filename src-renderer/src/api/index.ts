import type { ApiClient } from './client';
import { createBrowserClient, readToken } from './browserClient';
import { createElectronClient } from './electronClient';

let client: ApiClient | null = null;

/** The one client of this page: Electron's bridge when present, else the HTTP server. */
export function api(): ApiClient {
  if (!client) client = window.swan ? createElectronClient(window.swan) : createBrowserClient(readToken());
  return client;
}

export { ApiError } from './client';
export type { ApiClient } from './client';
