/**
 * One output file written through a stream. On any failure (including a stop thrown by a
 * progress callback) the stream is destroyed and its close awaited before the error goes
 * on, so the caller's cleanup cannot run before a late open re-creates the file.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';

export interface FileStream {
  out: WriteStream;
  /** Rejects when the file or any watched source stream fails. */
  failed: Promise<never>;
  /** Makes `failed` reject on this stream's errors too. */
  watch(source: NodeJS.EventEmitter): void;
}

export async function writeThroughStream<T>(file: string, body: (s: FileStream) => Promise<T>): Promise<T> {
  const out = createWriteStream(file);
  let fail: (err: unknown) => void = () => {};
  const failed = new Promise<never>((_, rej) => {
    fail = rej;
  });
  failed.catch(() => undefined);
  out.on('error', fail);
  const closed = once(out, 'close').catch(() => undefined);
  try {
    const result = await body({ out, failed, watch: (s) => s.on('error', fail) });
    await Promise.race([once(out, 'finish'), failed]);
    return result;
  } catch (err) {
    out.destroy();
    await closed;
    throw err;
  }
}
