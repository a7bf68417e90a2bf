/**
 * A project of tall images through the real API, worker and engine: the retrain keeps their
 * aspect (features/geometry.ts), the model records it, the queue is scored by the same warm
 * session and every heatmap is a tall map drawn at the image's own aspect.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { EventPayload } from '../../../src-main/api/contract';
import { activeBackbone } from '../../../src-main/api/service';
import { labelledProject, waitFor } from './helpers';

describe('app project of elongated images', () => {
  // 56x140: aspect 2.5, like KolektorSDD's commutators.
  const setup = labelledProject({
    name: 'Tall parts',
    count: 6,
    image: (k) => ({ width: 56, height: 140, brightness: k < 4 ? 100 : 220 }),
    good: 4,
    defect: 4,
    className: 'crack',
  });
  const { api, events } = setup;

  it('trains at 224x576, scores the queue with tall maps and serves heatmaps at the image aspect', async () => {
    const { runId } = await api.invoke('training.start', {
      settings: { steps: 3, pseudoPoolPerImage: 1, validateFolds: 0 },
    });
    await waitFor(() => events.some((e) => e.event === 'scoring.finished'), 'training and scoring', 240_000);
    const fin = events.find((e) => e.event === 'training.finished')!
      .payload as EventPayload<'training.finished'>;
    expect(fin).toMatchObject({ runId, status: 'done' });
    const project = (await api.invoke('project.current', {}))!;
    const manifest = JSON.parse(
      await readFile(join(project.path, 'models', `run-${runId}`, 'manifest.json'), 'utf8'),
    );
    expect(manifest.backbone.inputShape).toEqual({ height: 576, width: 224 });
    // What opening the project warms: a session of the active model's shape, not a square one.
    const { model } = await api.invoke('models.active', {});
    expect(activeBackbone({ activeModel: () => model })).toMatchObject({
      inputSize: 224,
      inputShape: { height: 576, width: 224 },
    });

    const scored = (await api.invoke('images.list', { sort: 'score_desc' })).items;
    expect(scored).toHaveLength(setup.ids.length);
    expect(scored.every((i) => typeof i.score === 'number' && Number.isFinite(i.score))).toBe(true);
    const d = await api.invoke('images.get', { id: setup.ids[5]! });
    // MobileNet's stride 32: 576x224 -> 18x7.
    expect([d.scoreDetail!.heatmap!.h, d.scoreDetail!.heatmap!.w]).toEqual([18, 7]);
    const file = await api.resolveFile('heatmap', setup.ids[5]!);
    const png = await sharp(file!.body as Buffer).metadata();
    expect(png.height! / png.width!).toBeCloseTo(140 / 56, 1);
  });
});
