/**
 * The Electron wiring with a stubbed `electron` and a stubbed service: the window is
 * secure, every operation has a validating handler, events reach the window, and the
 * image protocol serves only what the open project holds.
 */
import { describe, expect, it, vi } from 'vitest';
import { opNames } from '../../../src-main/api/contract';
import { EVENT_CHANNEL, IMAGE_SCHEME, opChannel } from '../../../src-preload/bridge';

const h = vi.hoisted(() => ({
  handlers: new Map<string, (event: unknown, raw?: unknown) => Promise<unknown>>(),
  protocolHandlers: new Map<string, (req: { url: string }) => Promise<Response>>(),
  privileged: [] as unknown[],
  windows: [] as { options: Record<string, unknown>; sent: unknown[][]; url?: string }[],
  serviceCalls: [] as [string, unknown][],
  listeners: [] as ((e: unknown) => void)[],
  permissions: {} as Record<string, (...args: unknown[]) => unknown>,
}));

vi.mock('electron', () => {
  class BrowserWindow {
    rec: (typeof h.windows)[number];
    webContents: Record<string, unknown>;
    constructor(options: Record<string, unknown>) {
      this.rec = { options, sent: [] };
      h.windows.push(this.rec);
      this.webContents = {
        setWindowOpenHandler: () => {},
        on: () => {},
        send: (...args: unknown[]) => this.rec.sent.push(args),
      };
    }
    once(): void {}
    on(): void {}
    loadURL(url: string): Promise<void> {
      this.rec.url = url;
      return Promise.resolve();
    }
  }
  return {
    BrowserWindow,
    shell: { openExternal: vi.fn() },
    Menu: { setApplicationMenu: vi.fn(), buildFromTemplate: vi.fn((t: unknown) => t) },
    dialog: { showOpenDialog: vi.fn(), showErrorBox: vi.fn() },
    ipcMain: {
      handle: (ch: string, fn: (event: unknown, raw?: unknown) => Promise<unknown>) => h.handlers.set(ch, fn),
      removeHandler: (ch: string) => h.handlers.delete(ch),
    },
    session: {
      defaultSession: {
        setPermissionRequestHandler: (fn: (...a: unknown[]) => unknown) => (h.permissions.request = fn),
        setPermissionCheckHandler: (fn: (...a: unknown[]) => unknown) => (h.permissions.check = fn),
        setDevicePermissionHandler: (fn: (...a: unknown[]) => unknown) => (h.permissions.device = fn),
      },
    },
    protocol: {
      registerSchemesAsPrivileged: (s: unknown) => h.privileged.push(s),
      handle: (scheme: string, fn: (req: { url: string }) => Promise<Response>) =>
        h.protocolHandlers.set(scheme, fn),
    },
    app: {
      isPackaged: false,
      requestSingleInstanceLock: () => true,
      getPath: () => '/tmp/swan-docs',
      whenReady: () => Promise.resolve(),
      on: vi.fn(),
      quit: vi.fn(),
    },
  };
});

vi.mock('../../../src-main/api/service', () => ({
  createService: () => ({
    call: async (op: string, input: unknown) => {
      h.serviceCalls.push([op, input]);
      if (op === 'project.current') return { ok: true, data: { path: '/projects/p1' } };
      return { ok: true, data: { closed: true } };
    },
    on: (l: (e: unknown) => void) => {
      h.listeners.push(l);
      return () => {};
    },
    resolveFile: async (kind: string, id: number) => {
      if (id !== 1) return null;
      if (kind === 'image') return { contentType: 'image/png', file: '/data/a.png' };
      if (kind === 'thumb') return { contentType: 'image/jpeg', file: '/elsewhere/1.jpg' };
      return { contentType: 'image/png', body: Buffer.from([137, 80, 78, 71]) };
    },
    close: async () => {},
  }),
}));

const { runElectronApp } = await import('../../../src-main/electron/app');
runElectronApp();
await new Promise((r) => setTimeout(r, 0));

const trusted = { senderFrame: { url: h.windows[0]?.url } };

describe('Electron shell wiring', () => {
  it('opens one sandboxed, isolated window on the bundled renderer', () => {
    expect(h.windows).toHaveLength(1);
    const prefs = h.windows[0]!.options.webPreferences as Record<string, unknown>;
    expect(prefs).toMatchObject({ contextIsolation: true, sandbox: true, nodeIntegration: false });
    expect(String(prefs.preload)).toMatch(/preload[/\\]index\.cjs$/);
    expect(h.windows[0]!.url).toMatch(/^file:.*renderer\/index\.html$/);
    expect(JSON.stringify(h.privileged)).toContain(IMAGE_SCHEME);
  });

  it('registers a handler per operation that validates before the service sees anything', async () => {
    for (const op of opNames) expect(h.handlers.has(opChannel(op)), op).toBe(true);
    const create = h.handlers.get(opChannel('project.create'))!;
    const bad = (await create(trusted, { name: '' })) as { ok: boolean; error: { code: string } };
    expect(bad).toMatchObject({ ok: false, error: { code: 'invalid_input' } });
    expect(h.serviceCalls.some(([op]) => op === 'project.create')).toBe(false);
    const close = h.handlers.get(opChannel('project.close'))!;
    expect(await close(trusted, {})).toEqual({ ok: true, data: { closed: true } });
    const foreign = (await close({ senderFrame: { url: 'https://evil.example/' } }, {})) as {
      error: { code: string };
    };
    expect(foreign.error.code).toBe('unauthorized');
  });

  it('forwards service events to the window', () => {
    h.listeners.forEach((l) => l({ event: 'project.changed', payload: { what: 'labels' } }));
    expect(h.windows[0]!.sent).toContainEqual([
      EVENT_CHANNEL,
      { event: 'project.changed', payload: { what: 'labels' } },
    ]);
  });

  it('serves project images by id and refuses everything else', async () => {
    const handle = h.protocolHandlers.get(IMAGE_SCHEME)!;
    const ok = await handle({ url: 'swan-image://image/1' });
    expect(ok.status).toBe(200);
    // The type the service read from the bytes, not one Electron guesses from the name.
    expect(ok.headers.get('content-type')).toBe('image/png');
    expect(ok.headers.get('x-content-type-options')).toBe('nosniff');
    const heat = await handle({ url: 'swan-image://heatmap/1' });
    expect(heat.headers.get('content-type')).toBe('image/png');
    expect(new Uint8Array(await heat.arrayBuffer())[1]).toBe(80);
    expect((await handle({ url: 'swan-image://image/2' })).status).toBe(404);
    expect((await handle({ url: 'swan-image://image/../../etc/passwd' })).status).toBe(400);
    // A thumbnail path outside the project folder is refused even if the store names it.
    expect((await handle({ url: 'swan-image://thumb/1' })).status).toBe(403);
  });

  it('asks for the project folder once per opened project, not per image', async () => {
    const handle = h.protocolHandlers.get(IMAGE_SCHEME)!;
    const currentCalls = (): number => h.serviceCalls.filter(([op]) => op === 'project.current').length;
    const before = currentCalls();
    await handle({ url: 'swan-image://image/1' });
    await handle({ url: 'swan-image://image/1' });
    expect(currentCalls()).toBe(before);
    h.listeners.forEach((l) => l({ event: 'project.changed', payload: { what: 'project' } }));
    await handle({ url: 'swan-image://image/1' });
    expect(currentCalls()).toBe(before + 1);
  });

  it('denies every permission request and check by default (issue 13, finding 6)', () => {
    const granted: boolean[] = [];
    for (const permission of ['media', 'geolocation', 'notifications', 'clipboard-read', 'hid'])
      h.permissions.request?.({}, permission, (ok: boolean) => granted.push(ok), {});
    expect(granted).toEqual([false, false, false, false, false]);
    expect(h.permissions.check?.({}, 'media', 'file://', {})).toBe(false);
    expect(h.permissions.device?.({ deviceType: 'hid' })).toBe(false);
  });
});
