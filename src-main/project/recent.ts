/** The recent-projects list: a small JSON file in the app's state folder. */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { RecentProject } from '../api/contract';
import { DB_FILE } from './store';

const MAX_RECENT = 20;

export class RecentList {
  constructor(private readonly file: string) {}

  private read(): Omit<RecentProject, 'exists'>[] {
    try {
      const parsed: unknown = JSON.parse(readFileSync(this.file, 'utf8'));
      if (!Array.isArray(parsed)) return [];
      return parsed.filter(
        (p): p is Omit<RecentProject, 'exists'> =>
          typeof p === 'object' &&
          p !== null &&
          typeof p.path === 'string' &&
          typeof p.name === 'string' &&
          typeof p.openedAt === 'string',
      );
    } catch {
      // A missing or damaged list is not worth failing over: start a new one.
      return [];
    }
  }

  list(): RecentProject[] {
    return this.read().map((p) => ({ ...p, exists: existsSync(join(p.path, DB_FILE)) }));
  }

  touch(path: string, name: string): void {
    const rest = this.read().filter((p) => p.path !== path);
    const next = [{ path, name, openedAt: new Date().toISOString() }, ...rest].slice(0, MAX_RECENT);
    try {
      mkdirSync(dirname(this.file), { recursive: true });
      const tmp = `${this.file}.tmp-${process.pid}`;
      writeFileSync(tmp, JSON.stringify(next, null, 2));
      renameSync(tmp, this.file);
    } catch {
      // The recent list is a convenience; a read-only state folder must not block opening a project.
    }
  }
}
