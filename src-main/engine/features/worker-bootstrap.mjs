// Development/test entry of the feature worker: Node cannot run the .ts worker by itself, so
// this registers tsx's ESM loader in the worker thread, then imports the real entry.
// (Harmless when the parent already runs under tsx: the loader is registered again.)
// The packaged app does not use this file: the worker is a separate bundle entry (see pool.ts).
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
