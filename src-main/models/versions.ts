/**
 * Model versions beyond training: delete, export to and import from `.swanmodel` files.
 * The store keeps the rows; this module keeps the folders and rows consistent.
 */
import { rm } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import type { ModelInfo } from '../api/contract';
import { AppError } from '../api/errors';
import type { ProjectStore } from '../project/store';
import {
  exportModelArchive,
  importModelArchive,
  isInside,
  ModelArchiveError,
  SWANMODEL_EXT,
} from './archive';
import { appMetrics, withoutImageScores } from './held-out';

/**
 * The backbone the app ships (the engine's MOBILENET_ID). Not imported from the engine:
 * that module loads TF.js, which the main process must not pay for. A unit test checks
 * that both agree.
 */
export const APP_BACKBONE_ID = 'mobilenet_v1_0.75';

/** The backbone this project's models use: the newest model's, else the app's own. */
export function projectBackboneId(store: ProjectStore): string {
  for (const m of store.listModels()) {
    const b = m.settings.backbone;
    if (typeof b === 'string' && b) return b;
  }
  return APP_BACKBONE_ID;
}

/** Deletes a version that is not active: its scores, threshold and folder. */
export async function deleteModel(store: ProjectStore, id: number): Promise<void> {
  const m = store.getModel(id);
  if (m.active) {
    throw new AppError(
      'conflict',
      `model version ${m.version} is the active model and cannot be deleted: activate another version first`,
    );
  }
  const dir = store.modelDir(id);
  store.db.transaction(() => {
    store.db.prepare('DELETE FROM scores WHERE model_id = ?').run(id);
    store.db
      .prepare('DELETE FROM settings WHERE key IN (?, ?)')
      .run(`threshold:${id}`, `threshold-source:${id}`);
    store.db.prepare('UPDATE training_runs SET model_id = NULL WHERE model_id = ?').run(id);
    store.db.prepare('DELETE FROM models WHERE id = ?').run(id);
  })();
  // Only ever remove a folder inside the project's models folder.
  if (isInside(resolve(store.modelsDir), dir)) await rm(dir, { recursive: true, force: true });
}

function fileName(project: string, version: number): string {
  const safe = project.replace(/[^\p{L}\p{N}._-]+/gu, '_').replace(/^\.+/, '_') || 'model';
  return `${safe}-v${version}${SWANMODEL_EXT}`;
}

export async function exportModel(
  store: ProjectStore,
  id: number,
  target: { file?: string; outDir?: string },
): Promise<{ file: string; bytes: number }> {
  const m = store.getModel(id);
  let file = target.file
    ? resolve(target.file)
    : join(target.outDir ? resolve(target.outDir) : join(store.dir, 'exports'), fileName(store.name, m.version));
  if (extname(file).toLowerCase() !== SWANMODEL_EXT) file += SWANMODEL_EXT;
  const bytes = await exportModelArchive(store.modelDir(id), file, {
    app: 'swan-inspector',
    version: m.version,
    createdAt: m.createdAt,
    exportedAt: new Date().toISOString(),
    project: store.name,
    labelCounts: m.labelCounts,
    settings: m.settings,
    metrics: m.metrics,
    warnings: m.warnings,
  }).catch((err: unknown) => {
    if (err instanceof ModelArchiveError) throw new AppError('not_found', err.message);
    throw err;
  });
  return { file, bytes };
}

export async function importModel(store: ProjectStore, file: string, activate: boolean): Promise<ModelInfo> {
  const path = resolve(file);
  try {
    return await importModelArchive(
      path,
      store.modelsDir,
      projectBackboneId(store),
      ({ dirName, manifest, info }, moveIntoPlace) => {
        const warnings = [...(info?.warnings ?? [])];
        warnings.push(
          `imported from ${basename(path)}${info ? ` (version ${info.version} of project "${info.project}")` : ''}`,
        );
        const settings: Record<string, unknown> = {
          ...(info?.settings ?? (manifest.settings as unknown as Record<string, unknown>)),
          backbone: manifest.backbone.id,
          inputSize: manifest.backbone.inputSize,
          ...(manifest.backend ? { backend: manifest.backend.tag } : {}),
        };
        // The row and the folder move commit together: a failed move rolls the row back.
        return store.db.transaction(() => {
          const m = store.addModel(
            {
              dir: join('models', dirName),
              settings,
              // Without the exporter's counts, every training image is counted as good: the manifest does not say.
              labelGood: info?.labelCounts.good ?? manifest.trainingImageIds.length,
              labelDefect: info?.labelCounts.defect ?? 0,
              // The ids name images of another project: none of this project's images was trained on.
              labelIds: [],
              // Held-out metrics travel; the out-of-fold scores name the other project's images, so they stay behind.
              metrics: withoutImageScores(info?.metrics ?? appMetrics(manifest)),
              warnings,
              runId: null,
            },
            activate,
          );
          moveIntoPlace();
          return m;
        })();
      },
    );
  } catch (err) {
    if (err instanceof ModelArchiveError) {
      throw new AppError(
        err.problem === 'not-zip' && /does not exist/.test(err.message) ? 'not_found' : 'invalid_input',
        err.message,
      );
    }
    throw err;
  }
}
