/**
 * Electron's front door to the API: one ipcMain handler per operation. Every payload is
 * validated again here with the contract's schemas (the renderer is not trusted), and
 * every reply is the contract's envelope, so errors keep their code across IPC.
 */
import type { IpcMain, IpcMainInvokeEvent } from 'electron';
import {
  operations,
  opNames,
  type ApiResult,
  type OpName,
  type OpOutput,
  type OpParsedInput,
} from '../api/contract';
import { toErrorShape } from '../api/errors';
import { opChannel } from '../../src-preload/bridge';

/** Runs one validated operation (the service's job). */
export type Dispatch = <K extends OpName>(op: K, input: OpParsedInput<K>) => Promise<OpOutput<K>>;

export type SenderCheck = (event: Pick<IpcMainInvokeEvent, 'senderFrame'>) => boolean;

function describeIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  return issues
    .map((i) => (i.path.length ? `${i.path.map(String).join('.')}: ${i.message}` : i.message))
    .join('; ');
}

/** Validates and runs one request; never throws. Exported for the unit tests. */
export async function handleRequest<K extends OpName>(
  op: K,
  raw: unknown,
  dispatch: Dispatch,
): Promise<ApiResult<K>> {
  const parsed = operations[op].input.safeParse(raw ?? {});
  if (!parsed.success) {
    return {
      ok: false,
      error: { code: 'invalid_input', message: `${op}: ${describeIssues(parsed.error.issues)}` },
    };
  }
  try {
    const data = await dispatch(op, parsed.data as OpParsedInput<K>);
    return { ok: true, data };
  } catch (err) {
    return { ok: false, error: toErrorShape(err) };
  }
}

/** Registers a handler per operation; returns a function that removes them all. */
export function registerApiHandlers(
  ipc: Pick<IpcMain, 'handle' | 'removeHandler'>,
  dispatch: Dispatch,
  isTrustedSender: SenderCheck,
): () => void {
  for (const op of opNames) {
    ipc.handle(opChannel(op), async (event, raw: unknown) => {
      if (!isTrustedSender(event)) {
        return {
          ok: false,
          error: { code: 'unauthorized', message: 'Request from an untrusted page refused.' },
        };
      }
      return handleRequest(op, raw, dispatch);
    });
  }
  return () => opNames.forEach((op) => ipc.removeHandler(opChannel(op)));
}
