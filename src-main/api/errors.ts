/** The one error type that crosses the API: a code the UI can branch on and a message for people. */
import type { ApiErrorShape, ErrorCode } from './contract';

export class AppError extends Error {
  constructor(
    public readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AppError';
  }

  toShape(): ApiErrorShape {
    return { code: this.code, message: this.message };
  }
}

const READ_ONLY_FS = new Set(['EACCES', 'EPERM', 'EROFS']);
const READ_ONLY_SQLITE = /^SQLITE_(READONLY|CANTOPEN|PERM|AUTH)/;

/** True for errors that mean "this location cannot be written". */
export function isWriteDenied(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return READ_ONLY_FS.has(code) || READ_ONLY_SQLITE.test(code);
}

/**
 * Turns anything thrown into the API's error shape. Unknown errors keep their message
 * (people need it to report a bug) under the 'internal' code.
 */
export function toErrorShape(err: unknown, projectDir?: string): ApiErrorShape {
  if (err instanceof AppError) return err.toShape();
  if (isWriteDenied(err)) {
    const where = projectDir ? `The project folder ${projectDir}` : 'The folder';
    return {
      code: 'read_only',
      message: `${where} is read-only, so this change was not saved (${(err as Error).message}). Make the folder writable and try again; nothing saved before was lost.`,
    };
  }
  const name = (err as Error | null)?.name;
  if (name === 'EngineError' || name === 'ModelFileError')
    return { code: 'engine', message: (err as Error).message };
  if (name === 'DataError' || name === 'ImageError')
    return { code: 'invalid_input', message: (err as Error).message };
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^(ENOENT|ENOTDIR|EISDIR|ENOSPC|EIO|SQLITE_)/.test(code)) {
    return { code: 'io', message: (err as Error).message };
  }
  return { code: 'internal', message: err instanceof Error ? err.message : String(err) };
}
