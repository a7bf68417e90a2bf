/**
 * The one application window. Kept separate from the wiring so its security-relevant
 * options can be asserted in a unit test without a running Electron.
 */
import { BrowserWindow, shell, type BrowserWindowConstructorOptions, type Session } from 'electron';

/** Options every window gets: the renderer sees only what the preload exposes. */
export function secureWindowOptions(preloadPath: string): BrowserWindowConstructorOptions {
  return {
    width: 1360,
    height: 880,
    minWidth: 960,
    minHeight: 640,
    show: false,
    title: 'Swan Inspector',
    backgroundColor: '#f4f6f9',
    webPreferences: {
      preload: preloadPath,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      spellcheck: false,
    },
  };
}

/**
 * The page the window loads: the bundled renderer, or the dev server electron-vite names in
 * ELECTRON_RENDERER_URL, in development only. A packaged app ignores the variable: its pages
 * are trusted for IPC, so an environment variable must not choose them.
 */
export function rendererUrlFor(isPackaged: boolean, envUrl: string | undefined, bundled: string): string {
  return !isPackaged && envUrl ? envUrl : bundled;
}

/** Deny by default: the app needs no camera, microphone, notifications, geolocation, HID... */
export function denyAllPermissions(
  session: Pick<
    Session,
    'setPermissionRequestHandler' | 'setPermissionCheckHandler' | 'setDevicePermissionHandler'
  >,
): void {
  session.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  session.setPermissionCheckHandler(() => false);
  session.setDevicePermissionHandler(() => false);
}

/** Pages the window may show: the bundled renderer (file://) or the dev server. */
export function isAllowedNavigation(url: string, rendererUrl: string): boolean {
  try {
    const target = new URL(url);
    const home = new URL(rendererUrl);
    if (home.protocol === 'file:') return target.protocol === 'file:' && target.pathname === home.pathname;
    return target.origin === home.origin;
  } catch {
    return false;
  }
}

export function createMainWindow(preloadPath: string, rendererUrl: string): BrowserWindow {
  const win = new BrowserWindow(secureWindowOptions(preloadPath));
  win.once('ready-to-show', () => win.show());
  // Links to the outside world open in the system browser, never inside the app window.
  win.webContents.setWindowOpenHandler(({ url }) => {
    if (url.startsWith('https://')) void shell.openExternal(url);
    return { action: 'deny' };
  });
  win.webContents.on('will-navigate', (event, url) => {
    if (!isAllowedNavigation(url, rendererUrl)) event.preventDefault();
  });
  void win.loadURL(rendererUrl);
  return win;
}
