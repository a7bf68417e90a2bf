#!/usr/bin/env node
/**
 * `npm run swan` / `bench` / `bench:table`: runs the CLI from a bundle (out/cli/swan.js, with
 * the feature and engine workers beside it) instead of transpiling the whole source tree with
 * tsx at every start. The bundle is rebuilt with esbuild (a dependency of vite) whenever a file
 * under src-main is newer than it, so the command always runs the current sources; without
 * esbuild it falls back to tsx.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'out', 'cli');
const entries = {
  swan: 'src-main/cli/swan.ts',
  // Looked for beside the bundle (engine/features/pool.ts, worker/host.ts).
  'feature-worker': 'src-main/engine/features/worker.ts',
  'engine-worker': 'src-main/worker/engine-worker.ts',
};
const bundle = path.join(outDir, 'swan.js');

// CommonJS packages the CLI loads at every start. `import` of a CommonJS package makes Node
// scan its source for export names (cjs-module-lexer): @tensorflow/tfjs costs 0.9 s of CPU
// that way against 0.26 s through require(). The bundle requires these instead (same module
// instance: an ESM import of a CommonJS package goes through the same require cache).
const requiredPackages = ['@tensorflow/tfjs', 'onnx-proto', 'ml-matrix', 'sharp'];
const requireCommonJs = {
  name: 'require-commonjs',
  setup(b) {
    const filter = new RegExp(`^(${requiredPackages.map((p) => p.replace(/[/.]/g, '\\$&')).join('|')})$`);
    b.onResolve({ filter }, (args) =>
      args.namespace === 'required' ? { path: args.path, external: true } : { path: args.path, namespace: 'required' },
    );
    b.onLoad({ filter: /.*/, namespace: 'required' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return newest;
}

async function build() {
  const esbuild = await import('esbuild');
  // Built into a fresh folder and renamed into place: two commands started at once never
  // load a half-written bundle.
  const tmp = `${outDir}.tmp-${process.pid}`;
  await esbuild.build({
    entryPoints: Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, path.join(root, v)])),
    outdir: tmp,
    bundle: true,
    platform: 'node',
    format: 'esm',
    // Code split at the CLI's dynamic imports (main.ts imports each command when it runs), so a
    // command loads only its own packages: one bundle hoists every package import to its top.
    splitting: true,
    target: 'node20',
    // node_modules stay where they are: native addons, the wasm binaries, onnxruntime's libraries.
    packages: 'external',
    // `node --enable-source-maps scripts/swan.mjs ...` maps an internal error's stack to the sources.
    sourcemap: true,
    plugins: [requireCommonJs],
    // esbuild's require() in an ES module bundle calls this one.
    banner: { js: "import { createRequire as __swanCreateRequire } from 'node:module'; const require = __swanCreateRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  mkdirSync(path.dirname(outDir), { recursive: true });
  const old = `${outDir}.old-${process.pid}`;
  try {
    if (existsSync(outDir)) renameSync(outDir, old);
    renameSync(tmp, outDir);
  } catch {
    // Another command swapped its build in meanwhile: run this one's.
    return path.join(tmp, 'swan.js');
  }
  rmSync(old, { recursive: true, force: true });
  return bundle;
}

const stale = !existsSync(bundle) || statSync(bundle).mtimeMs < newestSource(path.join(root, 'src-main'));
let entry = bundle;
if (stale) {
  try {
    entry = await build();
  } catch (err) {
    // No esbuild (a production install): run the sources through tsx as before.
    process.stderr.write(
      `swan: could not build the CLI bundle (${err.message}); running the sources with tsx\n`,
    );
    const { register } = await import('tsx/esm/api');
    register();
    entry = path.join(root, entries.swan);
  }
}
await import(pathToFileURL(entry).href);
