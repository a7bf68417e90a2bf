import type { SwanBridge } from './bridge';

declare global {
  interface Window {
    /** Present only under Electron (exposed by the preload); absent in browser mode. */
    swan?: SwanBridge;
  }
}

export {};
