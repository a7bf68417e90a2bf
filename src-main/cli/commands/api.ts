/**
 * `swan api OPERATION [JSON] [--project DIR]`: the CLI front door of the app's typed API.
 * The same operations, validation and errors as the Electron IPC and the browser-mode
 * server; the reply is printed as JSON, progress events as JSON lines on stderr.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ApiService } from '../../api/service';
import { CliError } from '../cli-error';

/** Operations that start background work: the CLI waits for its end before exiting. */
const FINISH_EVENT: Record<string, string> = {
  'training.start': 'training.finished',
  'scoring.start': 'scoring.finished',
};

export async function runApi(
  op: string,
  json: string | undefined,
  opts: { project?: string; projectsRoot?: string },
): Promise<void> {
  let payload: unknown = {};
  if (json !== undefined) {
    try {
      payload = JSON.parse(json);
    } catch {
      throw new CliError(`The payload of ${op} is not valid JSON: ${json}`);
    }
  }
  // Without --projects-root the CLI leaves the app's own recent list alone: a scratch folder.
  const scratch = opts.projectsRoot ? null : mkdtempSync(join(tmpdir(), 'swan-api-'));
  const root = opts.projectsRoot ? resolve(opts.projectsRoot) : scratch!;
  const api = new ApiService({ projectsRoot: root, stateDir: root });
  let finished: (() => void) | null = null;
  const finishedEvent = FINISH_EVENT[op];
  const done = new Promise<void>((r) => (finished = r));
  const off = api.on((e) => {
    process.stderr.write(`${JSON.stringify(e)}\n`);
    if (e.event === finishedEvent) finished?.();
  });
  try {
    if (opts.project) {
      const opened = await api.call('project.open', { path: resolve(opts.project) });
      if (!opened.ok) throw new CliError(opened.error.message);
    }
    const r = await api.call(op, payload);
    if (!r.ok) throw new CliError(`${r.error.code}: ${r.error.message}`);
    if (finishedEvent) await done;
    process.stdout.write(`${JSON.stringify(r.data, null, 2)}\n`);
  } finally {
    off();
    await api.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
}
