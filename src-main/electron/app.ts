/**
 * The Electron shell: one window, the API over IPC, the image protocol, menus, dialogs.
 * All logic lives in the service; this file only connects Electron's pieces to it.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import {
  BrowserWindow,
  Menu,
  app,
  dialog,
  ipcMain,
  protocol,
  session,
  type IpcMainInvokeEvent,
} from 'electron';
import type { OpName, OpOutput, OpParsedInput } from '../api/contract';
import { AppError } from '../api/errors';
import { createService, type ApiService } from '../api/service';
import { EVENT_CHANNEL, IMAGE_SCHEME } from '../../src-preload/bridge';
import { registerDialogHandlers } from './dialogs';
import { registerApiHandlers, type Dispatch } from './ipc';
import { menuTemplate } from './menu';
import { resolveImageRequest, type ProjectFiles } from './protocol';
import { createMainWindow, denyAllPermissions, isAllowedNavigation, rendererUrlFor } from './window';

// Must run before 'ready': lets the renderer use swan-image:// URLs in <img> like https.
protocol.registerSchemesAsPrivileged([
  { scheme: IMAGE_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true, stream: true } },
]);

function serviceDispatch(service: ApiService): Dispatch {
  return async <K extends OpName>(op: K, input: OpParsedInput<K>): Promise<OpOutput<K>> => {
    const r = await service.call(op, input);
    if (!r.ok) throw new AppError(r.error.code, r.error.message);
    return r.data as OpOutput<K>;
  };
}

/**
 * The protocol's view of the open project. The folder is looked up once per opened
 * project (a gallery asks for hundreds of thumbnails) and forgotten when another opens.
 * After a close it may linger, harmlessly: with no project, resolveFile finds nothing.
 */
export function projectFiles(service: ApiService): ProjectFiles {
  let dir: Promise<string | null> | null = null;
  service.on((e) => {
    if (e.event === 'project.changed' && e.payload.what === 'project') dir = null;
  });
  return {
    dir: () =>
      (dir ??= service
        .call('project.current', {})
        .then((r) =>
          r.ok && r.data && typeof r.data === 'object' && 'path' in r.data ? r.data.path : null,
        )),
    lookup: (req) => service.resolveFile(req.kind, req.id),
  };
}

export function runElectronApp(): void {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  const isDev = !app.isPackaged && !!process.env['ELECTRON_RENDERER_URL'];
  const rendererUrl = rendererUrlFor(
    app.isPackaged,
    process.env['ELECTRON_RENDERER_URL'],
    pathToFileURL(join(__dirname, '../renderer/index.html')).href,
  );
  const preload = join(__dirname, '../preload/index.cjs');
  const service = createService({ projectsRoot: join(app.getPath('documents'), 'Swan Inspector') });
  let win: BrowserWindow | null = null;

  const trusted = (e: Pick<IpcMainInvokeEvent, 'senderFrame'>): boolean =>
    !!e.senderFrame && isAllowedNavigation(e.senderFrame.url, rendererUrl);

  app.on('second-instance', () => {
    if (win?.isMinimized()) win.restore();
    win?.focus();
  });

  void app.whenReady().then(() => {
    denyAllPermissions(session.defaultSession);
    registerApiHandlers(ipcMain, serviceDispatch(service), trusted);
    registerDialogHandlers(ipcMain, dialog, () => win, trusted);
    service.on((e) => win?.webContents.send(EVENT_CHANNEL, e));

    const files = projectFiles(service);
    protocol.handle(IMAGE_SCHEME, async (request) => {
      const r = await resolveImageRequest(request.url, files);
      if (!r.ok) return new Response(r.reason, { status: r.status });
      const headers = { 'content-type': r.served.contentType, 'x-content-type-options': 'nosniff' };
      if (r.served.body) return new Response(new Uint8Array(r.served.body), { headers });
      const body = Readable.toWeb(createReadStream(r.served.file as string)) as ReadableStream<Uint8Array>;
      return new Response(body, { headers });
    });

    Menu.setApplicationMenu(
      Menu.buildFromTemplate(
        menuTemplate({
          isDev,
          openProject: () => {
            void dialog
              .showOpenDialog({ title: 'Open a project folder', properties: ['openDirectory'] })
              .then(async (res) => {
                const path = res.filePaths[0];
                if (res.canceled || !path) return;
                const r = await service.call('project.open', { path });
                if (!r.ok) dialog.showErrorBox('Cannot open the project', r.error.message);
              });
          },
          closeProject: () => void service.call('project.close', {}),
        }),
      ),
    );

    win = createMainWindow(preload, rendererUrl);
    win.on('closed', () => (win = null));
  });

  app.on('window-all-closed', () => {
    void service.close().finally(() => app.quit());
  });
}
