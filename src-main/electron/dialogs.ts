/** Native pickers behind the preload's shell functions. */
import type { BrowserWindow, Dialog, IpcMain } from 'electron';
import { SHELL_CHANNELS } from '../../src-preload/bridge';
import type { SenderCheck } from './ipc';

type FileFilter = { name: string; extensions: string[] };

function cleanTitle(v: unknown, fallback: string): string {
  return typeof v === 'string' && v.length > 0 && v.length <= 200 ? v : fallback;
}

/** Only well-formed filters reach the OS dialog; anything else falls back to "all files". */
export function cleanFilters(v: unknown): FileFilter[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const ok = v.filter(
    (f): f is FileFilter =>
      typeof f === 'object' &&
      f !== null &&
      typeof (f as FileFilter).name === 'string' &&
      Array.isArray((f as FileFilter).extensions) &&
      (f as FileFilter).extensions.every((e) => typeof e === 'string' && /^[\w*]{1,10}$/.test(e)),
  );
  return ok.length ? ok.slice(0, 10) : undefined;
}

export function registerDialogHandlers(
  ipc: Pick<IpcMain, 'handle'>,
  dialog: Pick<Dialog, 'showOpenDialog'>,
  window: () => BrowserWindow | null,
  isTrustedSender: SenderCheck,
): void {
  ipc.handle(SHELL_CHANNELS.pickFolder, async (event, title: unknown) => {
    if (!isTrustedSender(event)) return null;
    const win = window();
    const opts = {
      title: cleanTitle(title, 'Choose a folder'),
      properties: ['openDirectory', 'createDirectory'] as const,
    };
    const res = win
      ? await dialog.showOpenDialog(win, { ...opts, properties: [...opts.properties] })
      : await dialog.showOpenDialog({ ...opts, properties: [...opts.properties] });
    return res.canceled ? null : (res.filePaths[0] ?? null);
  });
  ipc.handle(SHELL_CHANNELS.pickFile, async (event, filters: unknown) => {
    if (!isTrustedSender(event)) return null;
    const win = window();
    const opts = {
      title: 'Choose a file',
      properties: ['openFile' as const],
      filters: cleanFilters(filters),
    };
    const res = win ? await dialog.showOpenDialog(win, opts) : await dialog.showOpenDialog(opts);
    return res.canceled ? null : (res.filePaths[0] ?? null);
  });
}
