/**
 * The shape of `window.swan`: one function per API operation, grouped by feature, derived
 * from the contract so the preload, the renderer and main cannot drift apart.
 * Type-only: nothing here exists at run time.
 */
import type { ApiResult, EventName, EventPayload, FileKind, OpInput, OpName } from '../src-main/api/contract';

type GroupOf<K extends string> = K extends `${infer G}.${string}` ? G : never;
type FnOf<K extends string, G extends string> = K extends `${G}.${infer F}` ? F : never;

export type OpGroup = GroupOf<OpName>;

/** Every operation `g.f` becomes `swan.g.f(input)`, resolving to the reply envelope (never throws). */
export type OperationBridge = {
  [G in OpGroup]: {
    [F in FnOf<OpName, G>]: `${G}.${F}` extends infer K extends OpName
      ? (input: OpInput<K>) => Promise<ApiResult<K>>
      : never;
  };
};

export interface ShellBridge {
  /** Native folder picker; null when cancelled. */
  pickFolder(title?: string): Promise<string | null>;
  /** Native file picker (CSV import); null when cancelled. */
  pickFile(filters?: { name: string; extensions: string[] }[]): Promise<string | null>;
  /** Absolute path of a file dropped on the window (Electron-only: browsers hide it). */
  pathForFile(file: File): string;
  /** URL of an image of the open project, served by the app's image protocol. */
  fileUrl(kind: FileKind, id: number): string;
}

export interface EventsBridge {
  /** Subscribe to one progress/change event; returns the unsubscribe function. */
  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void;
}

export type SwanBridge = OperationBridge & { shell: ShellBridge; events: EventsBridge };

/** IPC channel of one operation. */
export const opChannel = (op: OpName): string => `swan:op:${op}`;
export const EVENT_CHANNEL = 'swan:event';
export const SHELL_CHANNELS = {
  pickFolder: 'swan:shell:pickFolder',
  pickFile: 'swan:shell:pickFile',
} as const;
/** Scheme of the image protocol: swan-image://<kind>/<imageId>. */
export const IMAGE_SCHEME = 'swan-image';
