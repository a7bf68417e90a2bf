/**
 * The only bridge between the sandboxed renderer and main. It exposes one explicit
 * function per operation (no generic invoke), each sending to its own channel; main
 * validates every payload again with the contract's schemas.
 */
import { contextBridge, ipcRenderer, webUtils, type IpcRendererEvent } from 'electron';
import type { ApiResult, EventName, EventPayload, FileKind, OpInput, OpName } from '../src-main/api/contract';
import {
  EVENT_CHANNEL,
  IMAGE_SCHEME,
  SHELL_CHANNELS,
  opChannel,
  type EventsBridge,
  type OperationBridge,
  type ShellBridge,
  type SwanBridge,
} from './bridge';

function send<K extends OpName>(op: K, input: OpInput<K>): Promise<ApiResult<K>> {
  return ipcRenderer.invoke(opChannel(op), input) as Promise<ApiResult<K>>;
}

const operations = {
  project: {
    create: (input) => send('project.create', input),
    open: (input) => send('project.open', input),
    current: (input) => send('project.current', input),
    listRecent: (input) => send('project.listRecent', input),
    close: (input) => send('project.close', input),
  },
  import: {
    run: (input) => send('import.run', input),
    upload: (input) => send('import.upload', input),
  },
  images: {
    list: (input) => send('images.list', input),
    ids: (input) => send('images.ids', input),
    get: (input) => send('images.get', input),
    remove: (input) => send('images.remove', input),
    refresh: (input) => send('images.refresh', input),
    batches: (input) => send('images.batches', input),
    setEvaluation: (input) => send('images.setEvaluation', input),
  },
  labels: {
    set: (input) => send('labels.set', input),
    importFile: (input) => send('labels.importFile', input),
  },
  classes: {
    list: (input) => send('classes.list', input),
    create: (input) => send('classes.create', input),
  },
  system: {
    info: (input) => send('system.info', input),
  },
  training: {
    start: (input) => send('training.start', input),
    cancel: (input) => send('training.cancel', input),
    status: (input) => send('training.status', input),
    runs: (input) => send('training.runs', input),
  },
  models: {
    list: (input) => send('models.list', input),
    active: (input) => send('models.active', input),
    activate: (input) => send('models.activate', input),
    delete: (input) => send('models.delete', input),
    export: (input) => send('models.export', input),
    import: (input) => send('models.import', input),
  },
  scoring: {
    start: (input) => send('scoring.start', input),
    cancel: (input) => send('scoring.cancel', input),
    status: (input) => send('scoring.status', input),
  },
  threshold: {
    get: (input) => send('threshold.get', input),
    set: (input) => send('threshold.set', input),
    histogram: (input) => send('threshold.histogram', input),
  },
  evaluate: {
    run: (input) => send('evaluate.run', input),
  },
  report: {
    export: (input) => send('report.export', input),
  },
} satisfies OperationBridge;

const KNOWN_EVENTS = [
  'import.progress',
  'training.progress',
  'training.finished',
  'scoring.progress',
  'scoring.finished',
  'validation.finished',
  'worker.crashed',
  'project.changed',
  'report.progress',
] as const satisfies readonly EventName[];

type Listener = (payload: unknown) => void;
const listeners = new Map<EventName, Set<Listener>>();

// One IPC subscription for all events; renderer listeners never see the IpcRendererEvent.
ipcRenderer.on(EVENT_CHANNEL, (_e: IpcRendererEvent, message: { event: EventName; payload: unknown }) => {
  for (const fn of listeners.get(message.event) ?? []) fn(message.payload);
});

const events = {
  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void {
    if (!(KNOWN_EVENTS as readonly string[]).includes(event))
      throw new Error(`unknown event: ${String(event)}`);
    const set = listeners.get(event) ?? new Set<Listener>();
    listeners.set(event, set);
    const fn = listener as Listener;
    set.add(fn);
    return () => set.delete(fn);
  },
} satisfies EventsBridge;

const FILE_KINDS = ['thumb', 'image', 'heatmap'] as const satisfies readonly FileKind[];

const shell = {
  pickFolder: (title?: string) =>
    ipcRenderer.invoke(SHELL_CHANNELS.pickFolder, title ?? null) as Promise<string | null>,
  pickFile: (filters?: { name: string; extensions: string[] }[]) =>
    ipcRenderer.invoke(SHELL_CHANNELS.pickFile, filters ?? null) as Promise<string | null>,
  pathForFile: (file: File) => webUtils.getPathForFile(file),
  fileUrl: (kind: FileKind, id: number) => {
    if (!FILE_KINDS.includes(kind) || !Number.isInteger(id) || id <= 0) throw new Error('bad file reference');
    return `${IMAGE_SCHEME}://${kind}/${id}`;
  },
} satisfies ShellBridge;

contextBridge.exposeInMainWorld('swan', { ...operations, events, shell } satisfies SwanBridge);
