/** Where a benchmark's numbers came from: the commit, and whether the tree differed from it. */
import { execFileSync } from 'node:child_process';

export interface Provenance {
  commit: string | null;
  /** Tracked files differed from the commit when the run started. */
  dirty: boolean | null;
}

export function gitProvenance(cwd: string): Provenance {
  const git = (...args: string[]) =>
    execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    return {
      commit: git('rev-parse', 'HEAD'),
      dirty: git('status', '--porcelain', '--untracked-files=no') !== '',
    };
  } catch {
    return { commit: null, dirty: null };
  }
}
