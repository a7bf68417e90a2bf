/**
 * The project store: one folder per project holding `project.sqlite`, `thumbs/` and
 * `models/`. Everything the inspector did (images, labels, classes, model versions,
 * training runs, scores, threshold) is a row here, so reopening restores it all.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type {
  DefectClass,
  HistogramBin,
  ImageDetail,
  ImageFilter,
  ImageScoreDetail,
  ImageSort,
  ImageStatus,
  ImageSummary,
  LabelValue,
  ModelInfo,
  ModelValidation,
  ProjectInfo,
  RunStatus,
  TrainingRun,
  TrainSettingsInput,
} from '../api/contract';
import { AppError, isWriteDenied } from '../api/errors';
import { removeLeftovers } from './cleanup';
import { migrate } from './schema';

export const EVALUATION_BATCHES_KEY = 'evaluation-batches';
const EVALUATION_BATCHES_SQL = `SELECT j.value FROM settings st, json_each(st.value) j WHERE st.key = '${EVALUATION_BATCHES_KEY}'`;

export const DB_FILE = 'project.sqlite';
export const THUMBS_DIR = 'thumbs';
export const MODELS_DIR = 'models';
export const CACHE_DIR = 'cache';
export const PREVIEWS_DIR = 'previews';

const now = (): string => new Date().toISOString();

export interface NewImage {
  path: string;
  sha256: string;
  width: number;
  height: number;
  batch: string;
}

export interface NewModel {
  dir: string;
  settings: Record<string, unknown>;
  labelGood: number;
  labelDefect: number;
  labelIds: number[];
  metrics: Record<string, unknown> | null;
  warnings: string[];
  runId: number | null;
}

export interface ScoreRow {
  imageId: number;
  total: number;
  perHead: Record<string, number>;
  heatmap: { h: number; w: number; data: Float32Array } | null;
}

interface ImageRow {
  id: number;
  path: string;
  name: string;
  sha256: string;
  width: number;
  height: number;
  status: ImageStatus;
  imported_at: string;
  batch: string;
  label: 'good' | 'defect' | null;
  class_id: number | null;
  class_name: string | null;
  label_updated_at: string | null;
  score: number | null;
}

interface ModelRow {
  id: number;
  version: number;
  dir: string;
  created_at: string;
  settings: string;
  label_good: number;
  label_defect: number;
  label_ids: string;
  metrics: string | null;
  warnings: string;
  active: number;
  run_id: number | null;
}

interface RunRow {
  id: number;
  status: RunStatus;
  started_at: string;
  finished_at: string | null;
  settings: string;
  error: string | null;
  model_id: number | null;
}

/** Fails with a clear 'read_only' error when the folder cannot be written. */
function probeWritable(dir: string): void {
  const probe = join(dir, `.swan-write-probe-${process.pid}`);
  try {
    writeFileSync(probe, '');
    unlinkSync(probe);
  } catch (err) {
    if (isWriteDenied(err)) {
      throw new AppError(
        'read_only',
        `The project folder ${dir} is read-only (${(err as NodeJS.ErrnoException).code}). Swan Inspector saves labels, scores and models there: make the folder writable and open it again. Nothing in it was changed.`,
      );
    }
    throw err;
  }
}

function openDb(file: string): Database.Database {
  const db = new Database(file, { timeout: 1500 });
  // Exclusive locking before WAL: SQLite then keeps the WAL index in heap memory instead of
  // a memory-mapped -shm file, whose pages fault with SIGBUS (killing the app) when the
  // folder stops accepting writes. It also keeps a second app instance from opening the
  // same project while this one has it open.
  db.pragma('locking_mode = EXCLUSIVE');
  db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = ON');
  // WAL + NORMAL is durable across app crashes (only an OS crash can lose the last commit).
  db.pragma('synchronous = NORMAL');
  return db;
}

export class ProjectStore {
  readonly db: Database.Database;
  readonly thumbsDir: string;
  readonly modelsDir: string;
  readonly cacheDir: string;
  readonly previewsDir: string;
  /** Leftovers of a crash or a forced stop that opening removed (cleanup.ts), project-relative. */
  cleanedUp: string[] = [];

  private constructor(
    readonly dir: string,
    db: Database.Database,
  ) {
    this.db = db;
    this.thumbsDir = join(dir, THUMBS_DIR);
    this.modelsDir = join(dir, MODELS_DIR);
    this.cacheDir = join(dir, CACHE_DIR);
    this.previewsDir = join(dir, PREVIEWS_DIR);
  }

  /** Creates a project in `dir`, which must be absent or empty. */
  static create(dirIn: string, name: string): ProjectStore {
    const dir = resolve(dirIn);
    if (existsSync(dir)) {
      if (!statSync(dir).isDirectory()) throw new AppError('conflict', `${dir} exists and is not a folder`);
      if (existsSync(join(dir, DB_FILE)))
        throw new AppError('conflict', `${dir} already holds a project; open it instead`);
      const entries = readdirSync(dir).filter((e) => !e.startsWith('.'));
      if (entries.length > 0)
        throw new AppError('conflict', `${dir} is not empty; choose an empty or new folder for the project`);
    }
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      if (isWriteDenied(err))
        throw new AppError(
          'read_only',
          `Cannot create the project folder ${dir}: the parent folder is read-only`,
        );
      throw err;
    }
    probeWritable(dir);
    const store = ProjectStore.openAt(dir);
    store.db
      .prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?), (?, ?)')
      .run('name', name, 'created_at', now());
    return store;
  }

  /** Opens an existing project; marks moved/deleted image files missing and interrupted runs failed. */
  static open(dirIn: string): ProjectStore {
    const dir = resolve(dirIn);
    if (!existsSync(join(dir, DB_FILE))) {
      throw new AppError('not_found', `${dir} is not a Swan Inspector project (no ${DB_FILE} in it)`);
    }
    probeWritable(dir);
    const store = ProjectStore.openAt(dir);
    store.failInterruptedRuns();
    store.cleanedUp = removeLeftovers(dir, store.db, {
      models: store.modelsDir,
      thumbs: store.thumbsDir,
      previews: store.previewsDir,
    });
    store.refreshStatus();
    return store;
  }

  private static openAt(dir: string): ProjectStore {
    for (const sub of [THUMBS_DIR, MODELS_DIR, CACHE_DIR]) mkdirSync(join(dir, sub), { recursive: true });
    let db: Database.Database | null = null;
    try {
      db = openDb(join(dir, DB_FILE));
      migrate(db);
      // Take the exclusive lock now, not at the first change: a second instance is told at once.
      db.exec('BEGIN IMMEDIATE; COMMIT');
    } catch (err) {
      db?.close();
      if ((err as { code?: string }).code === 'SQLITE_BUSY') {
        throw new AppError(
          'conflict',
          `The project ${dir} is open in another Swan Inspector window or process; close it there first.`,
        );
      }
      throw err;
    }
    return new ProjectStore(dir, db);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  get name(): string {
    const row = this.db.prepare("SELECT value FROM meta WHERE key = 'name'").get() as
      { value: string } | undefined;
    return row?.value ?? basename(this.dir);
  }

  info(): ProjectInfo {
    const created = this.db.prepare("SELECT value FROM meta WHERE key = 'created_at'").get() as
      { value: string } | undefined;
    const c = this.db
      .prepare(
        `SELECT COUNT(*) AS total,
                SUM(i.status = 'missing') AS missing,
                SUM(l.label = 'good') AS good,
                SUM(l.label = 'defect') AS defect
         FROM images i LEFT JOIN labels l ON l.image_id = i.id`,
      )
      .get() as { total: number; missing: number | null; good: number | null; defect: number | null };
    const good = c.good ?? 0;
    const defect = c.defect ?? 0;
    return {
      path: this.dir,
      name: this.name,
      createdAt: created?.value ?? '',
      imageCount: c.total,
      missingCount: c.missing ?? 0,
      counts: { good, defect, unlabelled: c.total - good - defect },
      activeModelId: this.activeModelRow()?.id ?? null,
      threshold: this.getThreshold(),
      readOnly: false,
      ...(this.cleanedUp.length ? { cleanedUp: this.cleanedUp } : {}),
    };
  }

  // -------------------------------------------------------------------------------------
  // Images
  // -------------------------------------------------------------------------------------

  imageIdByPath(path: string): number | null {
    const row = this.db.prepare('SELECT id FROM images WHERE path = ?').get(path) as
      { id: number } | undefined;
    return row?.id ?? null;
  }

  insertImage(img: NewImage): number {
    const r = this.db
      .prepare(
        `INSERT INTO images (path, name, sha256, width, height, status, imported_at, batch)
         VALUES (@path, @name, @sha256, @width, @height, 'ok', @at, @batch)`,
      )
      .run({ ...img, name: basename(img.path), at: now() });
    return Number(r.lastInsertRowid);
  }

  imagePath(id: number): { path: string; status: ImageStatus } | null {
    return (
      (this.db.prepare('SELECT path, status FROM images WHERE id = ?').get(id) as
        { path: string; status: ImageStatus } | undefined) ?? null
    );
  }

  /** What the file server needs of an image: where it was imported from and its content hash. */
  imageFileRow(id: number): { path: string; sha256: string } | null {
    return (
      (this.db.prepare('SELECT path, sha256 FROM images WHERE id = ?').get(id) as
        { path: string; sha256: string } | undefined) ?? null
    );
  }

  /** Thumbnails are named by content hash: the same picture imported twice shares one. */
  thumbPath(id: number): string | null {
    const r = this.db.prepare('SELECT sha256 FROM images WHERE id = ?').get(id) as
      { sha256: string } | undefined;
    return r ? join(this.thumbsDir, `${r.sha256}.jpg`) : null;
  }

  private filterSql(
    filter: ImageFilter | undefined,
    modelId: number | null,
  ): { where: string; params: Record<string, unknown> } {
    const clauses: string[] = [];
    const params: Record<string, unknown> = { model: modelId ?? -1 };
    if (filter?.label === 'unlabelled') clauses.push('l.label IS NULL');
    else if (filter?.label) {
      clauses.push('l.label = @label');
      params.label = filter.label;
    }
    if (filter?.classId !== undefined) {
      clauses.push('l.class_id = @classId');
      params.classId = filter.classId;
    }
    if (filter?.scored === true) clauses.push('s.total IS NOT NULL');
    if (filter?.scored === false) clauses.push('s.total IS NULL');
    if (filter?.aboveThreshold !== undefined) {
      const t = this.getThreshold();
      if (filter.aboveThreshold) {
        // No threshold yet: nothing is flagged.
        clauses.push(t === null ? '0' : 's.total > @threshold');
      } else {
        clauses.push(t === null ? '1' : '(s.total IS NULL OR s.total <= @threshold)');
      }
      if (t !== null) params.threshold = t;
    }
    if (filter?.status) {
      clauses.push('i.status = @status');
      params.status = filter.status;
    }
    if (filter?.batch) {
      clauses.push('i.batch = @batch');
      params.batch = filter.batch;
    }
    if (filter?.search) {
      clauses.push("i.name LIKE @search ESCAPE '\\'");
      params.search = `%${filter.search.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;
    }
    return { where: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
  }

  private static orderSql(sort: ImageSort): string {
    switch (sort) {
      case 'score_desc':
        return 'ORDER BY s.total IS NULL, s.total DESC, i.id';
      case 'score_asc':
        return 'ORDER BY s.total IS NULL, s.total ASC, i.id';
      case 'name':
        return 'ORDER BY i.name, i.id';
      case 'imported':
        return 'ORDER BY i.id';
    }
  }

  private static readonly FROM = `
    FROM images i
    LEFT JOIN labels l ON l.image_id = i.id
    LEFT JOIN classes c ON c.id = l.class_id
    LEFT JOIN scores s ON s.image_id = i.id AND s.model_id = @model`;

  private static readonly COLUMNS = `i.*, l.label, l.class_id, c.name AS class_name, l.updated_at AS label_updated_at, s.total AS score`;

  private toSummary(r: ImageRow, threshold: number | null): ImageSummary {
    return {
      id: r.id,
      name: r.name,
      path: r.path,
      status: r.status,
      width: r.width,
      height: r.height,
      batch: r.batch,
      label: r.label ?? 'unlabelled',
      classId: r.class_id,
      className: r.class_name,
      score: r.score,
      flagged: r.score !== null && threshold !== null && r.score > threshold,
    };
  }

  listImages(opts: { offset: number; limit: number; filter?: ImageFilter; sort: ImageSort }): {
    total: number;
    items: ImageSummary[];
  } {
    const modelId = this.activeModelRow()?.id ?? null;
    const { where, params } = this.filterSql(opts.filter, modelId);
    const total = (
      this.db.prepare(`SELECT COUNT(*) AS n ${ProjectStore.FROM} ${where}`).get(params) as { n: number }
    ).n;
    let rows = this.db
      .prepare(
        `SELECT ${ProjectStore.COLUMNS} ${ProjectStore.FROM} ${where} ${ProjectStore.orderSql(opts.sort)} LIMIT @limit OFFSET @offset`,
      )
      .all({ ...params, limit: opts.limit, offset: opts.offset }) as ImageRow[];
    // A file moved or deleted since the last check shows as missing on the page that lists it.
    if (this.refreshStatus(rows.map((r) => r.id)).changed > 0) {
      const fresh = new Map(rows.map((r) => [r.id, r]));
      for (const r of this.db
        .prepare(`SELECT id, status FROM images WHERE id IN (${rows.map((x) => x.id).join(',')})`)
        .all() as { id: number; status: ImageStatus }[]) {
        const row = fresh.get(r.id);
        if (row) row.status = r.status;
      }
      rows = [...fresh.values()];
    }
    const threshold = this.getThreshold();
    return { total, items: rows.map((r) => this.toSummary(r, threshold)) };
  }

  imageIds(filter: ImageFilter | undefined, sort: ImageSort): number[] {
    const { where, params } = this.filterSql(filter, this.activeModelRow()?.id ?? null);
    return (
      this.db
        .prepare(`SELECT i.id ${ProjectStore.FROM} ${where} ${ProjectStore.orderSql(sort)}`)
        .all(params) as { id: number }[]
    ).map((r) => r.id);
  }

  getImage(id: number): ImageDetail {
    this.refreshStatus([id]);
    const active = this.activeModelRow();
    const row = this.db
      .prepare(`SELECT ${ProjectStore.COLUMNS} ${ProjectStore.FROM} WHERE i.id = @id`)
      .get({ id, model: active?.id ?? -1 }) as ImageRow | undefined;
    if (!row) throw new AppError('not_found', `image ${id} is not in this project`);
    return {
      ...this.toSummary(row, this.getThreshold()),
      sha256: row.sha256,
      importedAt: row.imported_at,
      labelUpdatedAt: row.label_updated_at,
      scoreDetail: active ? this.scoreDetail(id, active.id) : null,
    };
  }

  removeImages(ids: number[]): number {
    const del = this.db.prepare('DELETE FROM images WHERE id = ? RETURNING sha256');
    const shaLeft = this.db.prepare('SELECT 1 FROM images WHERE sha256 = ?');
    const removed = this.db.transaction(() => ids.flatMap((id) => del.all(id) as { sha256: string }[]))();
    for (const { sha256 } of removed) {
      if (!shaLeft.get(sha256)) rmSync(join(this.thumbsDir, `${sha256}.jpg`), { force: true });
    }
    return removed.length;
  }

  /**
   * Re-checks that image files exist (all of them, or the given ids) and updates their
   * status. A check, not a re-hash: hashing every file on each open would be slow.
   */
  refreshStatus(ids?: number[]): { ok: number; missing: number; changed: number } {
    const rows = (
      ids
        ? ids.length === 0
          ? []
          : this.db
              .prepare(`SELECT id, path, status FROM images WHERE id IN (${ids.map(Number).join(',')})`)
              .all()
        : this.db.prepare('SELECT id, path, status FROM images').all()
    ) as { id: number; path: string; status: ImageStatus }[];
    const update = this.db.prepare('UPDATE images SET status = ? WHERE id = ?');
    let ok = 0;
    let missing = 0;
    const changes: [ImageStatus, number][] = [];
    for (const r of rows) {
      let present = false;
      try {
        present = statSync(r.path).isFile();
      } catch {
        present = false;
      }
      const status: ImageStatus = present ? 'ok' : 'missing';
      if (present) ok++;
      else missing++;
      if (status !== r.status) changes.push([status, r.id]);
    }
    if (changes.length) this.db.transaction(() => changes.forEach(([s, id]) => update.run(s, id)))();
    return { ok, missing, changed: changes.length };
  }

  // -------------------------------------------------------------------------------------
  // Labels and classes
  // -------------------------------------------------------------------------------------

  setLabels(ids: number[], label: LabelValue, classId: number | null): number {
    if (classId !== null && !this.db.prepare('SELECT 1 FROM classes WHERE id = ?').get(classId)) {
      throw new AppError('not_found', `defect class ${classId} does not exist`);
    }
    const exists = this.db.prepare('SELECT 1 FROM images WHERE id = ?');
    const del = this.db.prepare('DELETE FROM labels WHERE image_id = ?');
    const upsert = this.db.prepare(
      `INSERT INTO labels (image_id, label, class_id, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT(image_id) DO UPDATE SET label = excluded.label, class_id = excluded.class_id, updated_at = excluded.updated_at`,
    );
    return this.db.transaction(() => {
      const at = now();
      let n = 0;
      for (const id of ids) {
        if (!exists.get(id)) throw new AppError('not_found', `image ${id} is not in this project`);
        if (label === 'unlabelled') del.run(id);
        else upsert.run(id, label, label === 'defect' ? classId : null, at);
        n++;
      }
      return n;
    })();
  }

  listClasses(): DefectClass[] {
    return this.db
      .prepare(
        `SELECT c.id, c.name, COUNT(l.image_id) AS count FROM classes c
         LEFT JOIN labels l ON l.class_id = c.id AND l.label = 'defect'
         GROUP BY c.id ORDER BY c.id`,
      )
      .all() as DefectClass[];
  }

  /** The class of that name (case-insensitive), created when new. */
  ensureClass(name: string): DefectClass {
    const trimmed = name.trim();
    this.db.prepare('INSERT OR IGNORE INTO classes (name, created_at) VALUES (?, ?)').run(trimmed, now());
    const found = this.listClasses().find((c) => c.name.toLowerCase() === trimmed.toLowerCase());
    if (!found) throw new AppError('internal', `class ${trimmed} could not be created`);
    return found;
  }

  /** Labelled, present images: what a training run learns from. */
  /** Batches marked evaluation only: their labels never train (trainingSet leaves them out). */
  evaluationBatches(): string[] {
    const r = this.db.prepare('SELECT value FROM settings WHERE key = ?').get(EVALUATION_BATCHES_KEY) as
      { value: string } | undefined;
    try {
      const v = r ? (JSON.parse(r.value) as unknown) : [];
      return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
    } catch {
      return [];
    }
  }

  setEvaluationBatch(batch: string, evaluationOnly: boolean): void {
    const known = this.db.prepare('SELECT 1 FROM images WHERE batch = ? LIMIT 1').get(batch);
    if (!known) throw new AppError('not_found', `there is no batch "${batch}" in this project`);
    const set = new Set(this.evaluationBatches());
    if (evaluationOnly) set.add(batch);
    else set.delete(batch);
    this.db
      .prepare(
        'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      )
      .run(EVALUATION_BATCHES_KEY, JSON.stringify([...set].sort()));
  }

  /** Image ids by file path, for labels that name their images by path. */
  imageIdsByPath(paths: string[]): Map<string, number> {
    const stmt = this.db.prepare('SELECT id FROM images WHERE path = ?').pluck();
    const out = new Map<string, number>();
    for (const p of paths) {
      const id = stmt.get(p) as number | undefined;
      if (id !== undefined) out.set(p, id);
    }
    return out;
  }

  trainingSet(): {
    normals: { id: number; path: string }[];
    anomalies: { id: number; path: string; cls: string }[];
  } {
    const rows = this.db
      .prepare(
        `SELECT i.id, i.path, l.label, c.name AS cls FROM images i
         JOIN labels l ON l.image_id = i.id LEFT JOIN classes c ON c.id = l.class_id
         WHERE i.status = 'ok' AND i.batch NOT IN (${EVALUATION_BATCHES_SQL}) ORDER BY i.id`,
      )
      .all() as { id: number; path: string; label: 'good' | 'defect'; cls: string | null }[];
    return {
      normals: rows.filter((r) => r.label === 'good').map(({ id, path }) => ({ id, path })),
      anomalies: rows
        .filter((r) => r.label === 'defect')
        .map(({ id, path, cls }) => ({ id, path, cls: cls ?? 'defect' })),
    };
  }

  // -------------------------------------------------------------------------------------
  // Training runs
  // -------------------------------------------------------------------------------------

  startRun(settings: TrainSettingsInput): number {
    const r = this.db
      .prepare("INSERT INTO training_runs (status, started_at, settings) VALUES ('running', ?, ?)")
      .run(now(), JSON.stringify(settings));
    return Number(r.lastInsertRowid);
  }

  finishRun(
    id: number,
    status: Exclude<RunStatus, 'running'>,
    error: string | null,
    modelId: number | null = null,
  ): void {
    this.db
      .prepare(
        "UPDATE training_runs SET status = ?, finished_at = ?, error = ?, model_id = ? WHERE id = ? AND status = 'running'",
      )
      .run(status, now(), error, modelId, id);
  }

  /** A run left 'running' by a killed app will never finish: say so, and drop its half-written model folder. */
  failInterruptedRuns(): number {
    const stale = this.db.prepare("SELECT id FROM training_runs WHERE status = 'running'").all() as {
      id: number;
    }[];
    for (const { id } of stale) {
      this.finishRun(id, 'failed', 'interrupted: the app stopped while this run was training');
      rmSync(this.runDir(id), { recursive: true, force: true });
    }
    return stale.length;
  }

  /** Where a run's model is written; it becomes a model version only once complete. */
  runDir(runId: number): string {
    return join(this.modelsDir, `run-${runId}`);
  }

  private toRun(r: RunRow): TrainingRun {
    const end = r.finished_at ? Date.parse(r.finished_at) : null;
    return {
      id: r.id,
      status: r.status,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      durationMs: end === null ? null : end - Date.parse(r.started_at),
      settings: JSON.parse(r.settings) as TrainSettingsInput,
      error: r.error,
      modelId: r.model_id,
    };
  }

  listRuns(): TrainingRun[] {
    return (this.db.prepare('SELECT * FROM training_runs ORDER BY id DESC').all() as RunRow[]).map((r) =>
      this.toRun(r),
    );
  }

  getRun(id: number): TrainingRun | null {
    const r = this.db.prepare('SELECT * FROM training_runs WHERE id = ?').get(id) as RunRow | undefined;
    return r ? this.toRun(r) : null;
  }

  // -------------------------------------------------------------------------------------
  // Models
  // -------------------------------------------------------------------------------------

  private activeModelRow(): ModelRow | null {
    return (this.db.prepare('SELECT * FROM models WHERE active = 1').get() as ModelRow | undefined) ?? null;
  }

  private toModel(r: ModelRow): ModelInfo {
    return {
      id: r.id,
      version: r.version,
      createdAt: r.created_at,
      active: r.active === 1,
      runId: r.run_id,
      settings: JSON.parse(r.settings) as Record<string, unknown>,
      labelCounts: { good: r.label_good, defect: r.label_defect },
      metrics: r.metrics ? (JSON.parse(r.metrics) as Record<string, unknown>) : null,
      warnings: JSON.parse(r.warnings) as string[],
      ...this.validationOf(r.id),
    };
  }

  private validationOf(modelId: number): { validation?: ModelValidation } {
    const r = this.db.prepare('SELECT value FROM settings WHERE key = ?').get(`validation:${modelId}`) as
      { value: string } | undefined;
    return r ? { validation: JSON.parse(r.value) as ModelValidation } : {};
  }

  /** The images (ids) a model was trained on, as recorded when it was added. */
  modelLabelIds(id: number): number[] {
    const r = this.db.prepare('SELECT label_ids FROM models WHERE id = ?').get(id) as
      { label_ids: string } | undefined;
    if (!r) throw new AppError('not_found', `model ${id} does not exist in this project`);
    return JSON.parse(r.label_ids) as number[];
  }

  /** Where the model's background cross-validation stands (ModelInfo.validation). */
  setValidation(modelId: number, v: ModelValidation): void {
    this.db
      .prepare(
        'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      )
      .run(`validation:${modelId}`, JSON.stringify(v));
  }

  /** The held-out metrics of a background cross-validation, and its status 'done', in one transaction. */
  finishValidation(modelId: number, metrics: Record<string, unknown> | null, folds: number): void {
    this.db.transaction(() => {
      this.db
        .prepare('UPDATE models SET metrics = ? WHERE id = ?')
        .run(metrics ? JSON.stringify(metrics) : null, modelId);
      this.setValidation(modelId, { status: 'done', folds, error: null });
    })();
  }

  /**
   * Records a completely saved model as the next version and, in the same transaction,
   * makes it active and closes its run: there is no moment with a half-registered model.
   */
  addModel(m: NewModel, activate = true): ModelInfo {
    const id = this.db.transaction(() => {
      const next =
        ((this.db.prepare('SELECT MAX(version) AS v FROM models').get() as { v: number | null }).v ?? 0) + 1;
      if (activate) this.db.prepare('UPDATE models SET active = 0 WHERE active = 1').run();
      const r = this.db
        .prepare(
          `INSERT INTO models (version, dir, created_at, settings, label_good, label_defect, label_ids, metrics, warnings, active, run_id)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          next,
          m.dir,
          now(),
          JSON.stringify(m.settings),
          m.labelGood,
          m.labelDefect,
          JSON.stringify(m.labelIds),
          m.metrics ? JSON.stringify(m.metrics) : null,
          JSON.stringify(m.warnings),
          activate ? 1 : 0,
          m.runId,
        );
      const modelId = Number(r.lastInsertRowid);
      if (m.runId !== null) this.finishRun(m.runId, 'done', null, modelId);
      return modelId;
    })();
    return this.getModel(id);
  }

  getModel(id: number): ModelInfo {
    const r = this.db.prepare('SELECT * FROM models WHERE id = ?').get(id) as ModelRow | undefined;
    if (!r) throw new AppError('not_found', `model ${id} does not exist in this project`);
    return this.toModel(r);
  }

  /** Absolute folder of a model. */
  modelDir(id: number): string {
    const r = this.db.prepare('SELECT dir FROM models WHERE id = ?').get(id) as { dir: string } | undefined;
    if (!r) throw new AppError('not_found', `model ${id} does not exist in this project`);
    return resolve(this.dir, r.dir);
  }

  listModels(): ModelInfo[] {
    return (this.db.prepare('SELECT * FROM models ORDER BY version DESC').all() as ModelRow[]).map((r) =>
      this.toModel(r),
    );
  }

  activeModel(): ModelInfo | null {
    const r = this.activeModelRow();
    return r ? this.toModel(r) : null;
  }

  activateModel(id: number): ModelInfo {
    this.getModel(id);
    this.db.transaction(() => {
      this.db.prepare('UPDATE models SET active = 0 WHERE active = 1').run();
      this.db.prepare('UPDATE models SET active = 1 WHERE id = ?').run(id);
    })();
    return this.getModel(id);
  }

  // -------------------------------------------------------------------------------------
  // Scores
  // -------------------------------------------------------------------------------------

  saveScores(modelId: number, rows: ScoreRow[]): void {
    const put = this.db.prepare(
      `INSERT INTO scores (image_id, model_id, total, per_head, heatmap, heatmap_h, heatmap_w, scored_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(image_id, model_id) DO UPDATE SET total = excluded.total, per_head = excluded.per_head,
         heatmap = excluded.heatmap, heatmap_h = excluded.heatmap_h, heatmap_w = excluded.heatmap_w, scored_at = excluded.scored_at`,
    );
    const exists = this.db.prepare('SELECT 1 FROM images WHERE id = ?');
    this.db.transaction(() => {
      const at = now();
      for (const r of rows) {
        // The image may have been removed while it was being scored.
        if (!exists.get(r.imageId)) continue;
        const hm = r.heatmap;
        const blob = hm ? Buffer.from(hm.data.buffer, hm.data.byteOffset, hm.data.byteLength) : null;
        put.run(
          r.imageId,
          modelId,
          r.total,
          JSON.stringify(r.perHead),
          blob,
          hm?.h ?? null,
          hm?.w ?? null,
          at,
        );
      }
    })();
  }

  scoreDetail(imageId: number, modelId: number): ImageScoreDetail | null {
    const r = this.db
      .prepare(
        `SELECT s.*, m.version FROM scores s JOIN models m ON m.id = s.model_id WHERE s.image_id = ? AND s.model_id = ?`,
      )
      .get(imageId, modelId) as
      | {
          total: number;
          per_head: string;
          heatmap: Buffer | null;
          heatmap_h: number | null;
          heatmap_w: number | null;
          scored_at: string;
          version: number;
        }
      | undefined;
    if (!r) return null;
    let heatmap: ImageScoreDetail['heatmap'] = null;
    if (r.heatmap && r.heatmap_h && r.heatmap_w) {
      // Copy: the blob's buffer may not be 4-byte aligned for a Float32Array view.
      const f = new Float32Array(new Uint8Array(r.heatmap).buffer);
      heatmap = { h: r.heatmap_h, w: r.heatmap_w, data: Array.from(f) };
    }
    return {
      modelId,
      modelVersion: r.version,
      total: r.total,
      perHead: JSON.parse(r.per_head) as Record<string, number>,
      heatmap,
      scoredAt: r.scored_at,
    };
  }

  /**
   * A scale for heatmap colours: the 99th percentile of per-image heatmap maxima under
   * this model, so one image's overlay reads against the others'.
   */
  heatmapReference(modelId: number): number {
    const maxima: number[] = [];
    for (const r of this.db
      .prepare('SELECT heatmap FROM scores WHERE model_id = ? AND heatmap IS NOT NULL')
      .iterate(modelId) as Iterable<{ heatmap: Buffer }>) {
      const f = new Float32Array(new Uint8Array(r.heatmap).buffer);
      let m = -Infinity;
      for (const v of f) if (v > m) m = v;
      if (Number.isFinite(m)) maxima.push(m);
    }
    if (maxima.length === 0) return 1;
    maxima.sort((a, b) => a - b);
    return Math.max(1e-6, maxima[Math.min(maxima.length - 1, Math.floor(0.99 * maxima.length))]);
  }

  /** Present images with no score from this model (or all present images). */
  imagesToScore(modelId: number, scope: 'all' | 'unscored'): { id: number; path: string }[] {
    const sql =
      scope === 'all'
        ? "SELECT id, path FROM images WHERE status = 'ok' ORDER BY id"
        : `SELECT i.id, i.path FROM images i LEFT JOIN scores s ON s.image_id = i.id AND s.model_id = ?
           WHERE i.status = 'ok' AND s.total IS NULL ORDER BY i.id`;
    return (scope === 'all' ? this.db.prepare(sql).all() : this.db.prepare(sql).all(modelId)) as {
      id: number;
      path: string;
    }[];
  }

  /** Present images the active model has not scored (missing files cannot be scored). */
  unscoredCount(): number {
    const m = this.activeModelRow();
    if (!m)
      return (this.db.prepare("SELECT COUNT(*) AS n FROM images WHERE status = 'ok'").get() as { n: number })
        .n;
    return (
      this.db
        .prepare(
          "SELECT COUNT(*) AS n FROM images i LEFT JOIN scores s ON s.image_id = i.id AND s.model_id = ? WHERE i.status = 'ok' AND s.total IS NULL",
        )
        .get(m.id) as { n: number }
    ).n;
  }

  // -------------------------------------------------------------------------------------
  // Threshold
  // -------------------------------------------------------------------------------------

  /** Thresholds belong to a model: scores of two models are not on the same scale. */
  getThreshold(modelId: number | null = this.activeModelRow()?.id ?? null): number | null {
    if (modelId === null) return null;
    const r = this.db.prepare('SELECT value FROM settings WHERE key = ?').get(`threshold:${modelId}`) as
      { value: string } | undefined;
    return r ? Number(r.value) : null;
  }

  setThreshold(t: number, modelId: number | null = this.activeModelRow()?.id ?? null): number {
    if (modelId === null)
      throw new AppError('not_found', 'there is no active model yet: train one before setting a threshold');
    this.db
      .prepare(
        'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      )
      .run(`threshold:${modelId}`, String(t));
    return this.flaggedCount();
  }

  /**
   * The q-quantile of all the model's scores: the first threshold when no scored image is
   * labelled good yet (with good labels, api/threshold.ts sets it from a false-alarm target).
   */
  scoreQuantile(modelId: number, q: number): number | null {
    const pool = this.db
      .prepare('SELECT total FROM scores WHERE model_id = ? ORDER BY total')
      .pluck()
      .all(modelId) as number[];
    if (pool.length === 0) return null;
    return pool[Math.max(0, Math.min(pool.length - 1, Math.ceil(q * pool.length) - 1))];
  }

  goodScoredCount(modelId: number): number {
    return (
      this.db
        .prepare(
          "SELECT COUNT(*) AS n FROM scores s JOIN labels l ON l.image_id = s.image_id WHERE s.model_id = ? AND l.label = 'good'",
        )
        .get(modelId) as { n: number }
    ).n;
  }

  flaggedCount(): number {
    const m = this.activeModelRow();
    const t = this.getThreshold();
    if (!m || t === null) return 0;
    return (
      this.db.prepare('SELECT COUNT(*) AS n FROM scores WHERE model_id = ? AND total > ?').get(m.id, t) as {
        n: number;
      }
    ).n;
  }

  /** Scores of the active model, with labels, for histograms and threshold suggestions. */
  activeScores(): { total: number; label: 'good' | 'defect' | null }[] {
    const m = this.activeModelRow();
    if (!m) return [];
    return this.db
      .prepare(
        'SELECT s.total, l.label FROM scores s LEFT JOIN labels l ON l.image_id = s.image_id WHERE s.model_id = ?',
      )
      .all(m.id) as { total: number; label: 'good' | 'defect' | null }[];
  }

  histogram(binCount: number): {
    min: number | null;
    max: number | null;
    threshold: number | null;
    bins: HistogramBin[];
  } {
    const scores = this.activeScores();
    const threshold = this.getThreshold();
    if (scores.length === 0) return { min: null, max: null, threshold, bins: [] };
    let min = Infinity;
    let max = -Infinity;
    for (const s of scores) {
      min = Math.min(min, s.total);
      max = Math.max(max, s.total);
    }
    // All scores equal: one meaningful bin, widened so it has a visible extent.
    const width = max > min ? (max - min) / binCount : 1 / binCount;
    const bins: HistogramBin[] = Array.from({ length: binCount }, (_, k) => ({
      from: min + k * width,
      to: min + (k + 1) * width,
      count: 0,
      good: 0,
      defect: 0,
      unlabelled: 0,
    }));
    for (const s of scores) {
      const k = Math.min(binCount - 1, Math.floor((s.total - min) / width));
      const b = bins[k];
      b.count++;
      if (s.label === 'good') b.good++;
      else if (s.label === 'defect') b.defect++;
      else b.unlabelled++;
    }
    return { min, max, threshold, bins };
  }
}
