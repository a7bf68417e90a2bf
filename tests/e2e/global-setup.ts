/** Builds the renderer the server will serve, unless the build is already newer than the sources. */
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));

function newest(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let n = st.mtimeMs;
  for (const e of readdirSync(path)) if (e !== 'node_modules') n = Math.max(n, newest(join(path, e)));
  return n;
}

export default function globalSetup(): void {
  mkdirSync(join(root, 'test-results', 'screenshots'), { recursive: true });
  if (!existsSync('/usr/bin/chromium') && !process.env.SWAN_CHROMIUM) {
    throw new Error(
      'Chromium is missing: run `apt-get install -y chromium` (the e2e tests use Debian Chromium).',
    );
  }
  const built = join(root, 'out', 'renderer', 'index.html');
  // The renderer bundles pure modules of src-main too (contract, held-out metrics, threshold words).
  const sources = ['src-renderer', 'src-preload', 'src-main', 'electron.vite.config.ts'].map(
    (p) => join(root, p),
  );
  if (existsSync(built) && sources.every((s) => !existsSync(s) || newest(s) <= statSync(built).mtimeMs))
    return;
  const r = spawnSync(join(root, 'node_modules', '.bin', 'electron-vite'), ['build'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.status !== 0) throw new Error('electron-vite build failed; the e2e tests need the built renderer');
}
