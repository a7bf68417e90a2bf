/** The last stage of either training mode: the model saved with its backend on record. */
import { backendTag, type BackendInfo } from './backend';
import { saveModel, type ModelManifest, type SaveModelInput } from './model-file';
import type { ProgressFn } from './types';

export async function saveTrained(
  outDir: string,
  backend: BackendInfo,
  input: Omit<SaveModelInput, 'backend'>,
  onProgress?: ProgressFn,
): Promise<ModelManifest> {
  onProgress?.({ stage: 'save', step: 0, total: 1 });
  const manifest = await saveModel(outDir, {
    ...input,
    backend: { tag: backendTag(backend), description: backend.description },
  });
  onProgress?.({ stage: 'save', step: 1, total: 1 });
  return manifest;
}
