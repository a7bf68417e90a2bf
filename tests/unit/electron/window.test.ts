import { describe, expect, it, vi } from 'vitest';

const created: { options: Record<string, unknown>; loaded?: string; handlers: Record<string, unknown> }[] =
  [];

vi.mock('electron', () => {
  class BrowserWindow {
    webContents: { setWindowOpenHandler: (fn: unknown) => void; on: (ev: string, fn: unknown) => void };
    record: (typeof created)[number];
    constructor(options: Record<string, unknown>) {
      this.record = { options, handlers: {} };
      created.push(this.record);
      this.webContents = {
        setWindowOpenHandler: (fn) => (this.record.handlers['windowOpen'] = fn),
        on: (ev, fn) => (this.record.handlers[ev] = fn),
      };
    }
    once(): void {}
    show(): void {}
    loadURL(url: string): Promise<void> {
      this.record.loaded = url;
      return Promise.resolve();
    }
  }
  return { BrowserWindow, shell: { openExternal: vi.fn() } };
});

const { createMainWindow, isAllowedNavigation, rendererUrlFor, secureWindowOptions } =
  await import('../../../src-main/electron/window');

describe('main window', () => {
  it('isolates the renderer: context isolation, sandbox, no Node', () => {
    const prefs = secureWindowOptions('/app/out/preload/index.cjs').webPreferences!;
    expect(prefs.contextIsolation).toBe(true);
    expect(prefs.sandbox).toBe(true);
    expect(prefs.nodeIntegration).toBe(false);
    expect(prefs.nodeIntegrationInWorker).toBe(false);
    expect(prefs.webSecurity).toBe(true);
    expect(prefs.webviewTag).toBe(false);
    expect(prefs.preload).toBe('/app/out/preload/index.cjs');
  });

  it('creates the window with those options, denies pop-ups and foreign navigation', () => {
    const home = 'file:///app/out/renderer/index.html';
    createMainWindow('/app/out/preload/index.cjs', home);
    const rec = created.at(-1)!;
    expect((rec.options.webPreferences as Record<string, unknown>).sandbox).toBe(true);
    expect(rec.loaded).toBe(home);
    const open = rec.handlers['windowOpen'] as (d: { url: string }) => { action: string };
    expect(open({ url: 'https://example.com' }).action).toBe('deny');
    const nav = rec.handlers['will-navigate'] as (e: { preventDefault: () => void }, url: string) => void;
    const prevented = vi.fn();
    nav({ preventDefault: prevented }, 'https://evil.example/');
    expect(prevented).toHaveBeenCalledTimes(1);
    nav({ preventDefault: prevented }, home);
    expect(prevented).toHaveBeenCalledTimes(1);
  });

  it('allows navigation only to the renderer itself', () => {
    expect(
      isAllowedNavigation('file:///app/out/renderer/index.html', 'file:///app/out/renderer/index.html'),
    ).toBe(true);
    expect(isAllowedNavigation('file:///etc/passwd', 'file:///app/out/renderer/index.html')).toBe(false);
    expect(isAllowedNavigation('http://localhost:5173/x', 'http://localhost:5173/')).toBe(true);
    expect(isAllowedNavigation('http://localhost:5174/', 'http://localhost:5173/')).toBe(false);
    expect(isAllowedNavigation('not a url', 'http://localhost:5173/')).toBe(false);
  });

  it('honours ELECTRON_RENDERER_URL only when not packaged (issue 13, finding 6)', () => {
    const bundled = 'file:///app/out/renderer/index.html';
    expect(rendererUrlFor(false, 'http://localhost:5173', bundled)).toBe('http://localhost:5173');
    expect(rendererUrlFor(true, 'http://evil.example', bundled)).toBe(bundled);
    expect(rendererUrlFor(false, undefined, bundled)).toBe(bundled);
  });
});
