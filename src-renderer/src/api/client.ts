/**
 * What views need from the back end, independent of the shell. Two implementations:
 * Electron (window.swan from the preload) and browser mode (HTTP + WebSocket).
 */
import type {
  ApiErrorShape,
  ApiResult,
  ErrorCode,
  EventName,
  EventPayload,
  FileKind,
  OpInput,
  OpName,
  OpOutput,
} from '../../../src-main/api/contract';

export type { OpName, OpInput, OpOutput, EventName, EventPayload, FileKind };

export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode | 'network',
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ApiClient {
  readonly mode: 'electron' | 'browser';
  /** Runs one operation; rejects with ApiError carrying the server's message. */
  call<K extends OpName>(op: K, input: OpInput<K>): Promise<OpOutput<K>>;
  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void;
  fileUrl(kind: FileKind, id: number): string;
  /** Native pickers exist only under Electron. */
  pickFolder?(title?: string): Promise<string | null>;
  pickFile?(filters?: { name: string; extensions: string[] }[]): Promise<string | null>;
  /** Real path of a dropped file (Electron only; browsers never reveal it). */
  pathForFile?(file: File): string | null;
}

export function unwrap<K extends OpName>(result: ApiResult<K>): OpOutput<K> {
  if (result.ok) return result.data;
  throw new ApiError(result.error.code, result.error.message);
}

export function isErrorShape(v: unknown): v is ApiErrorShape {
  return typeof v === 'object' && v !== null && 'code' in v && 'message' in v;
}
