/**
 * The backbone as a retrain setting, through the real API and the real engine: a retrain with
 * 'resnet50' makes a ResNet-50 model that scores the queue, the next one without the setting
 * is MobileNet again (the worker's warm session follows the asked-for backbone both ways).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { EventPayload } from '../../../src-main/api/contract';
import { MOBILENET_ID, RESNET50_ID, resnet50Spec } from '../../../src-main/engine/backbone';
import { labelledProject, waitFor } from './helpers';

const haveWeights = existsSync(join(resnet50Spec().modelDir, 'weights'));

describe.skipIf(!haveWeights)('app retrain with the accurate backbone (ResNet-50)', () => {
  const setup = labelledProject({
    name: 'Backbones',
    count: 6,
    image: (k) => ({ size: 48, brightness: k < 4 ? 100 : 220 }),
    good: 4,
    defect: 4,
    className: 'burn',
  });
  const { api, events } = setup;

  /** Retrains with these settings; resolves when the new model has scored the queue. */
  async function retrain(settings: Record<string, unknown>): Promise<EventPayload<'training.finished'>> {
    const from = events.length;
    await api.invoke('training.start', {
      settings: { steps: 3, pseudoPoolPerImage: 1, validateFolds: 0, ...settings },
    });
    await waitFor(
      () => events.slice(from).some((e) => e.event === 'scoring.finished'),
      'training and scoring',
      240_000,
    );
    return events.slice(from).find((e) => e.event === 'training.finished')!
      .payload as EventPayload<'training.finished'>;
  }

  async function expectQueueScoredBy(backbone: string): Promise<void> {
    const model = (await api.invoke('models.active', {})).model!;
    expect(model.settings.backbone).toBe(backbone);
    const scored = (await api.invoke('images.list', { sort: 'score_desc' })).items;
    expect(scored).toHaveLength(setup.ids.length);
    expect(scored.every((i) => typeof i.score === 'number' && Number.isFinite(i.score))).toBe(true);
  }

  it('trains and scores with ResNet-50 when asked, and with MobileNet again when not', async () => {
    expect(await retrain({ backbone: 'resnet50' })).toMatchObject({ status: 'done', version: 1 });
    await expectQueueScoredBy(RESNET50_ID);
    const { runs } = await api.invoke('training.runs', {});
    expect(runs.find((r) => r.status === 'done')?.settings).toMatchObject({ backbone: 'resnet50' });

    expect(await retrain({})).toMatchObject({ status: 'done', version: 2 });
    await expectQueueScoredBy(MOBILENET_ID);
  }, 480_000);
});
