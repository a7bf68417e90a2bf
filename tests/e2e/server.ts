/**
 * Starts the browser-mode server as a child process, exactly as `npm start` would, and
 * keeps its output for the test report.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { TestInfo } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export interface RunningServer {
  url: string;
  origin: string;
  token: string;
  log: () => string;
  stop: () => Promise<void>;
}

export async function startServer(opts: { projectsRoot: string; port?: number }): Promise<RunningServer> {
  const args = [
    join(root, 'src-main', 'server', 'main.ts'),
    '--port',
    String(opts.port ?? 0),
    '--projects-root',
    opts.projectsRoot,
    '--static-dir',
    join(root, 'out', 'renderer'),
  ];
  const child: ChildProcess = spawn(join(root, 'node_modules', '.bin', 'tsx'), args, {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FORCE_COLOR: '0' },
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));

  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 60 s:\n${output}`)), 60_000);
    const check = (): void => {
      const m = /SWAN_URL=(\S+)/.exec(output);
      if (m?.[1]) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    };
    child.stdout?.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before starting:\n${output}`));
    });
  });
  const parsed = new URL(url);
  return {
    url,
    origin: parsed.origin,
    token: parsed.searchParams.get('token') ?? '',
    log: () => output,
    stop: () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(kill);
          done();
        });
        child.kill('SIGTERM');
      }),
  };
}

/** A fresh folder for one test and a server whose projects live in it. */
export async function startTestServer(prefix: string): Promise<{ dir: string; server: RunningServer }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, server: await startServer({ projectsRoot: join(dir, 'projects') }) };
}

/** After a test: stops its server, attaches the server's log when the test failed, removes its folder. */
export async function finishTest(server: RunningServer | null, dir: string, info: TestInfo): Promise<void> {
  await server?.stop();
  if (server && info.status !== info.expectedStatus)
    await info.attach('server.log', { body: server.log(), contentType: 'text/plain' });
  rmSync(dir, { recursive: true, force: true });
}
