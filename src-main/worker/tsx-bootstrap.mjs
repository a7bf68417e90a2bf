// Worker bootstrap for running TypeScript sources (tsx, vitest): registers tsx inside the
// worker thread, then loads the real entry. A built app loads the bundled .js entry directly.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.tsEntry);
