/**
 * Worker-thread entry of feature extraction: loads the backbone once, then answers batches.
 *
 * Batches are computed strictly one after another (one TF.js engine per thread), but a batch
 * that arrives while another computes starts decoding at once: sharp decodes on libuv's
 * thread pool, so the next batch's pixels are ready when the current forward pass ends.
 */
import { parentPort } from 'node:worker_threads';
import { describeError, FeatureComputer } from './compute';
import type { FromWorker, ToWorker, WorkResult } from './types';

const port = parentPort;
if (!port) throw new Error('features/worker.ts must run in a worker thread');

let computer: FeatureComputer | null = null;
let chain: Promise<void> = Promise.resolve();

function send(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(msg, transfer);
}

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'init') {
    FeatureComputer.create(msg.spec, msg.levels, msg.backend, msg.runtime).then(
      (c) => {
        computer = c;
        send({ type: 'ready', backend: c.backend });
      },
      (err: unknown) => send({ type: 'init-error', error: describeError(err) }),
    );
    return;
  }
  const { id, items } = msg;
  const prepared = computer ? computer.prepare(items) : null;
  const run = chain.then(async () => {
    let results: WorkResult[];
    try {
      if (!computer || !prepared) throw new Error('worker used before it was ready');
      results = await computer.run(await prepared);
    } catch (err) {
      results = items.map(() => ({ ok: false, error: describeError(err) }));
    }
    const transfer = results.flatMap((r) =>
      r.ok
        ? [
            ...r.levels.map((m) => m.data.buffer as ArrayBuffer),
            ...(r.pooled ? [r.pooled.buffer as ArrayBuffer] : []),
            ...Object.values(r.taps ?? {}).map((m) => m.data.buffer as ArrayBuffer),
          ]
        : [],
    );
    send({ type: 'result', id, results }, transfer);
  });
  chain = run.catch(() => undefined);
});
