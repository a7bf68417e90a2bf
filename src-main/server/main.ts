/**
 * Browser-mode entry: starts the local server and prints the URL (with its token) to open.
 *   tsx src-main/server/main.ts [--port N] [--projects-root DIR] [--static-dir DIR] [--open PROJECT]
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { startServer } from './server';
import { useBackbone } from '../app-paths';

const program = new Command()
  .name('swan-server')
  .description('Swan Inspector in your browser: a local server on 127.0.0.1')
  .option('-p, --port <n>', 'port (default: any free port)', (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--port: "${v}" is not a port number`);
    return n;
  })
  .option(
    '--projects-root <dir>',
    'folder for new projects',
    process.env.SWAN_PROJECTS_ROOT ?? join(homedir(), 'SwanInspector'),
  )
  .option(
    '--static-dir <dir>',
    'built renderer',
    fileURLToPath(new URL('../../out/renderer', import.meta.url)),
  )
  .option('--open <project>', 'open this project folder at start');

async function main(): Promise<void> {
  program.parse();
  const o = program.opts<{ port?: number; projectsRoot: string; staticDir: string; open?: string }>();
  // Before the engine worker starts: it inherits SWAN_BACKBONE_DIR.
  const backbone = useBackbone();
  if (!backbone.ok) console.error(`warning: ${backbone.message}`);
  const server = await startServer({
    port: o.port,
    staticDir: resolve(o.staticDir),
    projectsRoot: resolve(o.projectsRoot),
  });
  if (o.open) {
    const r = await server.service.call('project.open', { path: resolve(o.open) });
    if (!r.ok) console.error(`Could not open ${o.open}: ${r.error.message}`);
  }
  // One line the UI script and tests can parse, then a human hint.
  console.log(`SWAN_URL=${server.url}`);
  console.log(`Swan Inspector is running. Open this URL in your browser:\n  ${server.url}`);
  const stop = (): void => {
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
