/** The browser-mode entry prints a URL with its token, serves the renderer, stops on SIGTERM. */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from './helpers';

const MAIN = fileURLToPath(new URL('../../../src-main/server/main.ts', import.meta.url));

describe('server entry (src-main/server/main.ts)', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  it('prints the URL with its token and serves the page only with it', async () => {
    const web = join(tmp.dir, 'web');
    mkdirSync(web);
    writeFileSync(join(web, 'index.html'), '<!doctype html><title>Swan main</title>');
    const proc = spawn(
      process.execPath,
      ['--import', 'tsx', MAIN, '--static-dir', web, '--projects-root', join(tmp.dir, 'p')],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const url = await new Promise<string>((ok, fail) => {
      let out = '';
      const timer = setTimeout(() => fail(new Error('no URL printed')), 30_000);
      proc.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /SWAN_URL=(\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          ok(m[1]);
        }
      });
      proc.on('exit', (c) => fail(new Error(`exited ${c}`)));
    });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{40,}$/);
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Swan main');
    expect((await fetch(url.replace(/\?token=.*/, ''))).status).toBe(401);
    const exit = new Promise<number | null>((ok) => proc.on('exit', (code) => ok(code)));
    proc.kill('SIGTERM');
    expect(await exit).toBe(0);
  });

  it('refuses a bad port with a clear message', async () => {
    const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, '--port', 'abc'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((ok) => proc.on('exit', ok));
    expect(code).not.toBe(0);
    expect(err).toMatch(/--port: "abc" is not a port number/);
  });
});
