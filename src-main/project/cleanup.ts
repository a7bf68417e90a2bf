/**
 * What a crash, a forced stop or a cancelled job leaves behind, removed when a project opens:
 * half-written model folders (`.run-N.tmp-*`, `.run-N.old-*`), half-done imports (`.import-*`),
 * model folders no row names (`imported-*`, `run-N`), thumbnails and previews of no image,
 * temporary files of atomic writes, and temporary files an export was writing outside the
 * project (noted in the database before writing, see notePendingFiles).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import type Database from 'better-sqlite3';

const PENDING = 'pending-files:';

/** Files outside the project an operation is about to write; forget them with the returned function. */
export function notePendingFiles(db: Database.Database, files: string[]): () => void {
  const key = `${PENDING}${randomBytes(6).toString('hex')}`;
  db.prepare('INSERT INTO settings (key, value) VALUES (?, ?)').run(key, JSON.stringify(files));
  return () => {
    if (db.open) db.prepare('DELETE FROM settings WHERE key = ?').run(key);
  };
}

function remove(path: string, removed: string[], label: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
    removed.push(label);
  } catch {
    // A leftover that cannot be removed now is tried again at the next open.
  }
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Leftovers in a thumbs/ or previews/ folder: temp files, and files of no image's content. */
function sweepByContent(dir: string, shas: Set<string>, removed: string[], label: string): void {
  for (const name of list(dir)) {
    const sha = /^([0-9a-f]{64})\.(jpg|png)$/.exec(name)?.[1];
    if (sha && shas.has(sha)) continue;
    remove(join(dir, name), removed, `${label}/${name}`);
  }
}

/**
 * Removes the leftovers of `projectDir` (whose database is `db`, open and migrated).
 * Returns what was removed, as paths relative to the project (or absolute, outside it).
 */
export function removeLeftovers(
  projectDir: string,
  db: Database.Database,
  dirs: { models: string; thumbs: string; previews: string },
): string[] {
  const removed: string[] = [];
  const models = new Set(
    (db.prepare('SELECT dir FROM models').all() as { dir: string }[]).map((m) => resolve(projectDir, m.dir)),
  );
  const running = new Set(
    (db.prepare("SELECT id FROM training_runs WHERE status = 'running'").all() as { id: number }[]).map(
      (r) => `run-${r.id}`,
    ),
  );
  for (const name of list(dirs.models)) {
    const path = join(dirs.models, name);
    const leftover =
      name.startsWith('.') || (/^(imported-|run-\d+$)/.test(name) && !models.has(path) && !running.has(name));
    if (leftover) remove(path, removed, relative(projectDir, path));
  }
  const shas = new Set(
    (db.prepare('SELECT sha256 FROM images').all() as { sha256: string }[]).map((r) => r.sha256),
  );
  sweepByContent(dirs.thumbs, shas, removed, 'thumbs');
  sweepByContent(dirs.previews, shas, removed, 'previews');
  const pending = db.prepare(`SELECT key, value FROM settings WHERE key LIKE '${PENDING}%'`).all() as {
    key: string;
    value: string;
  }[];
  for (const p of pending) {
    let files: unknown;
    try {
      files = JSON.parse(p.value);
    } catch {
      files = [];
    }
    for (const f of Array.isArray(files) ? files : []) {
      // Only the temporary names the exports write: never anything else a row could name.
      if (typeof f === 'string' && /\.(part|tmp)-[0-9a-f]+$/.test(f) && existsSync(f)) remove(f, removed, f);
    }
    db.prepare('DELETE FROM settings WHERE key = ?').run(p.key);
  }
  return removed;
}
