import type { SwanBridge } from '../../../src-preload/bridge';
import type { ApiResult } from '../../../src-main/api/contract';
import { unwrap, type ApiClient, type OpInput, type OpName, type OpOutput } from './client';

/** Electron: every operation goes through its own preload function (swan.<group>.<fn>). */
export function createElectronClient(swan: SwanBridge): ApiClient {
  return {
    mode: 'electron',
    async call<K extends OpName>(op: K, input: OpInput<K>): Promise<OpOutput<K>> {
      const [group, fn] = op.split('.') as [keyof SwanBridge, string];
      const groupFns = swan[group] as unknown as Record<string, (i: unknown) => Promise<ApiResult<K>>>;
      const method = groupFns[fn];
      if (!method) throw new Error(`operation not exposed by the preload: ${op}`);
      return unwrap(await method(input));
    },
    on: (event, listener) => swan.events.on(event, listener),
    fileUrl: (kind, id) => swan.shell.fileUrl(kind, id),
    pickFolder: (title) => swan.shell.pickFolder(title),
    pickFile: (filters) => swan.shell.pickFile(filters),
    pathForFile: (file) => swan.shell.pathForFile(file) || null,
  };
}
