/**
 * Schema migrations, by version. PRAGMA user_version holds the last applied one; each
 * migration runs in its own transaction so a crash mid-way leaves the previous version.
 * Append new migrations; never edit one that has shipped.
 */
import type Database from 'better-sqlite3';

export const MIGRATIONS: readonly string[] = [
  // 1: the initial schema.
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);

  CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'missing')),
    imported_at TEXT NOT NULL,
    batch TEXT NOT NULL
  );
  CREATE INDEX images_batch ON images(batch);
  CREATE INDEX images_sha ON images(sha256);

  CREATE TABLE classes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at TEXT NOT NULL
  );

  CREATE TABLE labels (
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    label TEXT NOT NULL CHECK (label IN ('good', 'defect')),
    class_id INTEGER REFERENCES classes(id) ON DELETE SET NULL,
    updated_at TEXT NOT NULL,
    CHECK (label = 'defect' OR class_id IS NULL)
  );
  CREATE INDEX labels_class ON labels(class_id);

  CREATE TABLE training_runs (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'cancelled')),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    settings TEXT NOT NULL,
    error TEXT,
    model_id INTEGER REFERENCES models(id) ON DELETE SET NULL
  );

  CREATE TABLE models (
    id INTEGER PRIMARY KEY,
    version INTEGER NOT NULL UNIQUE,
    dir TEXT NOT NULL,
    created_at TEXT NOT NULL,
    settings TEXT NOT NULL,
    label_good INTEGER NOT NULL,
    label_defect INTEGER NOT NULL,
    label_ids TEXT NOT NULL,
    metrics TEXT,
    warnings TEXT NOT NULL DEFAULT '[]',
    active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
    run_id INTEGER REFERENCES training_runs(id) ON DELETE SET NULL
  );
  -- At most one active model, enforced by the database itself.
  CREATE UNIQUE INDEX models_one_active ON models(active) WHERE active = 1;

  CREATE TABLE scores (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    total REAL NOT NULL,
    per_head TEXT NOT NULL,
    heatmap BLOB,
    heatmap_h INTEGER,
    heatmap_w INTEGER,
    scored_at TEXT NOT NULL,
    PRIMARY KEY (image_id, model_id)
  );
  CREATE INDEX scores_model_total ON scores(model_id, total);
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the database up to SCHEMA_VERSION; refuses a database from a newer app. */
export function migrate(db: Database.Database): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new Error(
      `this project was written by a newer Swan Inspector (schema ${current}, this app knows ${SCHEMA_VERSION}); update the app to open it`,
    );
  }
  for (let v = current; v < SCHEMA_VERSION; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]);
      // user_version cannot be bound as a parameter; v is an integer we control.
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return SCHEMA_VERSION;
}
