/**
 * The app's warm feature session and the PatchCore head: a session opened for a project with the
 * head computes its backbone tap, so it serves the project's retrains and scorings with and
 * without the head (a session without the tap would make each open a cold one of its own).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, openSession, sessionTapLayers } from '../../../src-main/engine';
import { activeBackbone } from '../../../src-main/api/service';

const cacheDir = mkdtempSync(path.join(os.tmpdir(), 'swan-warm-'));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

describe('the warm session of a project with the PatchCore head', () => {
  it('knows the tap from the setting, the default when absent', () => {
    expect(sessionTapLayers(true, 'mobilenet')).toEqual(['conv_pw_11_relu']);
    expect(sessionTapLayers(true, 'resnet50')).toEqual(['stage2']);
    expect(sessionTapLayers(false, 'mobilenet')).toEqual([]);
    expect(sessionTapLayers(undefined, 'mobilenet')).toEqual(
      sessionTapLayers(DEFAULT_SETTINGS.patchcoreHead, 'mobilenet'),
    );
  });

  it("what opening a project warms carries the active model's head setting", () => {
    const model = (settings: Record<string, unknown>) => ({ activeModel: () => ({ settings }) }) as never;
    expect(activeBackbone(model({ backbone: 'mobilenet', patchcoreHead: true }))).toMatchObject({
      backbone: 'mobilenet',
      patchcoreHead: true,
    });
    expect(activeBackbone(model({ backbone: 'mobilenet' }))).not.toHaveProperty('patchcoreHead');
  });

  it('a session with the tap serves models with and without the head; one without serves only those without', async () => {
    const tapped = await openSession({
      cacheDir,
      workers: 0,
      tapLayers: sessionTapLayers(true, 'mobilenet'),
    });
    const plain = await openSession({ cacheDir, workers: 0, tapLayers: [] });
    try {
      const model = (tapLayers?: string[]) => ({
        id: tapped.spec.id,
        inputSize: tapped.spec.inputSize,
        featureLayer: tapped.spec.featureLayer,
        levels: tapped.levels,
        ...(tapLayers ? { tapLayers } : {}),
      });
      expect(plain.spec.tapLayers ?? []).toEqual([]);
      expect(tapped.serves(model(['conv_pw_11_relu']))).toBe(true);
      expect(tapped.serves(model())).toBe(true);
      expect(plain.serves(model())).toBe(true);
      expect(plain.serves(model(['conv_pw_11_relu']))).toBe(false);
      expect(tapped.serves(model(['conv_pw_5_relu']))).toBe(false);
    } finally {
      await tapped.close();
      await plain.close();
    }
  });
});
