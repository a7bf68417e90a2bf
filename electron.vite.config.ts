import { resolve } from 'node:path';
import { defineConfig } from 'electron-vite';
import vue from '@vitejs/plugin-vue';

/*
 * One build for both shells: out/main + out/preload are only used by Electron, while
 * out/renderer is the same static bundle the browser-mode server serves.
 */
export default defineConfig({
  main: {
    build: {
      outDir: 'out/main',
      // Native modules and the engine's heavy deps stay in node_modules; 'electron' is
      // provided by the runtime (and its binary may be absent at build time).
      externalizeDeps: true,
      rollupOptions: {
        input: {
          index: resolve(__dirname, 'src-main/index.ts'),
          // The engine runs in a worker thread; its bundle sits beside index.js.
          'engine-worker': resolve(__dirname, 'src-main/worker/engine-worker.ts'),
          // Feature extraction fans out to its own worker threads (engine/features/pool.ts).
          'feature-worker': resolve(__dirname, 'src-main/engine/features/worker.ts'),
        },
        external: ['electron'],
      },
    },
  },
  preload: {
    build: {
      outDir: 'out/preload',
      rollupOptions: {
        input: { index: resolve(__dirname, 'src-preload/index.ts') },
        external: ['electron'],
        // A sandboxed preload cannot be an ES module: emit CommonJS (.cjs because the
        // package is "type": "module").
        output: { format: 'cjs', entryFileNames: '[name].cjs' },
      },
    },
  },
  renderer: {
    root: resolve(__dirname, 'src-renderer'),
    // Relative asset URLs so the bundle loads from file:// in Electron and from / in browser mode.
    base: './',
    build: {
      outDir: resolve(__dirname, 'out/renderer'),
      // The browser-mode server sends this bundle over HTTP too: keep it small.
      minify: 'esbuild',
      rollupOptions: { input: { index: resolve(__dirname, 'src-renderer/index.html') } },
    },
    plugins: [vue()],
  },
});
