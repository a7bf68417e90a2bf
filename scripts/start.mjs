#!/usr/bin/env node
/* global process, console */
/**
 * `npm start`: builds the app when the sources are newer than the build, then opens the
 * Electron window where the Electron binary is installed (or can be fetched), or else starts browser mode
 * (the local server) and lets it print the URL with its token.
 *
 * Flags: --browser forces browser mode; --rebuild forces a build; anything else is passed
 * to the browser-mode server (e.g. --port 8080 --projects-root ~/swan).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const forceBrowser = args.includes('--browser') || process.env.SWAN_BROWSER === '1';
const forceBuild = args.includes('--rebuild');
const passThrough = args.filter((a) => a !== '--browser' && a !== '--rebuild');

const SOURCES = ['src-main', 'src-preload', 'src-renderer', 'electron.vite.config.ts', 'package.json'];
const BUILT = join(root, 'out', 'renderer', 'index.html');

function newestMtime(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const entry of readdirSync(path)) {
    if (entry === 'node_modules' || entry.startsWith('.')) continue;
    newest = Math.max(newest, newestMtime(join(path, entry)));
  }
  return newest;
}

function needsBuild() {
  if (forceBuild || !existsSync(BUILT) || !existsSync(join(root, 'out', 'main', 'index.js'))) return true;
  const built = statSync(BUILT).mtimeMs;
  return SOURCES.some((s) => existsSync(join(root, s)) && newestMtime(join(root, s)) > built);
}

/** The Electron executable, or null when the optional dependency's binary is absent. */
function electronBinary() {
  try {
    const path = require('electron');
    return typeof path === 'string' && existsSync(path) ? path : null;
  } catch {
    return null;
  }
}

function bin(name) {
  return join(root, 'node_modules', '.bin', process.platform === 'win32' ? `${name}.cmd` : name);
}

if (needsBuild()) {
  console.log('Building Swan Inspector…');
  const r = spawnSync(bin('electron-vite'), ['build'], {
    cwd: root,
    stdio: 'inherit',
    shell: process.platform === 'win32',
  });
  if (r.status !== 0) {
    console.error('The build failed; see the messages above.');
    process.exit(r.status ?? 1);
  }
}

/**
 * npm does not run Electron's own download at install (package.json allowScripts: it needs
 * the internet, which CI and the development machines lack). Fetch the binary on first
 * start instead; where that fails, browser mode runs.
 */
function installElectronBinary() {
  const script = join(root, 'node_modules', 'electron', 'install.js');
  if (!existsSync(script) || process.env.SWAN_NO_ELECTRON_DOWNLOAD === '1') return;
  console.log('Fetching the Electron binary (first start)…');
  const r = spawnSync(process.execPath, [script], {
    cwd: dirname(script),
    stdio: ['ignore', 'inherit', 'pipe'],
    encoding: 'utf8',
    timeout: 180_000,
  });
  if (r.status !== 0) {
    // The downloader prints a whole stack trace; its first line says what went wrong.
    const reason = (r.stderr ?? '').split('\n').find((l) => l.trim()) ?? 'no reason given';
    console.log(`The Electron binary could not be fetched (${reason.trim()}).`);
  }
}

let electron = forceBrowser ? null : electronBinary();
if (!forceBrowser && !electron) {
  installElectronBinary();
  electron = electronBinary();
}
let child;
if (electron) {
  child = spawn(electron, [root], { cwd: root, stdio: 'inherit' });
} else {
  if (!forceBrowser) console.log('Electron is not installed here: starting browser mode.');
  child = spawn(
    bin('tsx'),
    [
      join(root, 'src-main', 'server', 'main.ts'),
      '--static-dir',
      join(root, 'out', 'renderer'),
      ...passThrough,
    ],
    { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' },
  );
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(signal ? 1 : (code ?? 0)));
