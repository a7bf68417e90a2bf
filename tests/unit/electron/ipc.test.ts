import { describe, expect, it, vi } from 'vitest';
import { opNames } from '../../../src-main/api/contract';
import { AppError } from '../../../src-main/api/errors';
import { handleRequest, registerApiHandlers, type Dispatch } from '../../../src-main/electron/ipc';
import { opChannel } from '../../../src-preload/bridge';

vi.mock('electron', () => ({}));

function fakeIpc() {
  const handlers = new Map<string, (event: unknown, raw: unknown) => Promise<unknown>>();
  return {
    handlers,
    handle: (ch: string, fn: (event: unknown, raw: unknown) => Promise<unknown>) => void handlers.set(ch, fn),
    removeHandler: (ch: string) => void handlers.delete(ch),
  };
}

const trustedEvent = { senderFrame: { url: 'file:///app/out/renderer/index.html' } };

describe('IPC front door', () => {
  it('registers one channel per operation and removes them', () => {
    const ipc = fakeIpc();
    const off = registerApiHandlers(ipc as never, vi.fn() as unknown as Dispatch, () => true);
    expect(ipc.handlers.size).toBe(opNames.length);
    expect(ipc.handlers.has(opChannel('labels.set'))).toBe(true);
    off();
    expect(ipc.handlers.size).toBe(0);
  });

  it('rejects invalid payloads without calling the service', async () => {
    const dispatch = vi.fn();
    const bad: [string, unknown][] = [
      ['project.create', { name: '' }],
      ['project.create', { name: 'x', extra: 1 }],
      ['labels.set', { ids: [], label: 'good' }],
      ['labels.set', { ids: [1], label: 'good', className: 'scratch' }],
      ['labels.set', { ids: [-3], label: 'defect' }],
      ['images.get', { id: '1; DROP TABLE images' }],
      ['threshold.set', { threshold: Infinity }],
      ['import.run', { source: { kind: 'paths', paths: [''] } }],
      ['training.start', { settings: { steps: 0 } }],
      ['project.open', 'not an object'],
    ];
    for (const [op, raw] of bad) {
      const res = await handleRequest(op as never, raw, dispatch as unknown as Dispatch);
      expect(res.ok, `${op} ${JSON.stringify(raw)}`).toBe(false);
      if (!res.ok) {
        expect(res.error.code).toBe('invalid_input');
        expect(res.error.message).toContain(op);
      }
    }
    expect(dispatch).not.toHaveBeenCalled();
  });

  it('passes parsed input (defaults applied) and wraps the result', async () => {
    const dispatch = vi.fn(async () => ({ total: 0, items: [] }));
    const res = await handleRequest('images.list', {}, dispatch as unknown as Dispatch);
    expect(res).toEqual({ ok: true, data: { total: 0, items: [] } });
    expect(dispatch).toHaveBeenCalledWith('images.list', { offset: 0, limit: 100, sort: 'imported' });
  });

  it('turns service errors into the error envelope, keeping their code', async () => {
    const dispatch = vi.fn(async () => {
      throw new AppError('no_project', 'Open a project first.');
    });
    const res = await handleRequest('images.refresh', {}, dispatch as unknown as Dispatch);
    expect(res).toEqual({ ok: false, error: { code: 'no_project', message: 'Open a project first.' } });
  });

  it('refuses requests from an untrusted sender', async () => {
    const ipc = fakeIpc();
    const dispatch = vi.fn();
    registerApiHandlers(
      ipc as never,
      dispatch as unknown as Dispatch,
      (e) => e.senderFrame?.url.startsWith('file:///app/') ?? false,
    );
    const handler = ipc.handlers.get(opChannel('project.current'))!;
    const refused = (await handler({ senderFrame: { url: 'https://evil.example/' } }, {})) as {
      ok: boolean;
      error: { code: string };
    };
    expect(refused.ok).toBe(false);
    expect(refused.error.code).toBe('unauthorized');
    expect(dispatch).not.toHaveBeenCalled();
    dispatch.mockResolvedValue(null);
    expect(await handler(trustedEvent, {})).toEqual({ ok: true, data: null });
  });
});
