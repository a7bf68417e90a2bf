/**
 * The PatchCore head as a retrain setting, through the real API and the real engine: a retrain
 * with it scores the queue with a PatchCore part, before and after its cross-validation has
 * chosen the supervised weight (the head counts as set in both), and the next retrain without
 * the setting has no such head.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { EventPayload } from '../../../src-main/api/contract';
import { labelledProject, waitFor } from './helpers';

describe('app retrain with the PatchCore head', () => {
  // Eight plain good images, two bright unlabelled ones, two bright labelled defects.
  const setup = labelledProject({
    name: 'PatchCore head',
    count: 12,
    image: (k) => ({ size: 64, brightness: k < 8 ? 100 : 220 }),
    good: 8,
    defect: 10,
    className: 'burn',
  });
  const { api, events } = setup;

  it('scores with the head before and after the cross-validation, and drops it when switched off', async () => {
    await api.invoke('labels.set', { ids: [setup.ids[11]!], label: 'defect', className: 'burn' });
    const { runId } = await api.invoke('training.start', {
      settings: { steps: 5, pseudoPoolPerImage: 1, patchcoreHead: true, validateFolds: 2 },
    });
    await waitFor(() => events.some((e) => e.event === 'scoring.finished'), 'training and scoring', 240_000);
    const fin = events.find((e) => e.event === 'training.finished')!
      .payload as EventPayload<'training.finished'>;
    expect(fin).toMatchObject({ runId, status: 'done', version: 1 });
    const first = (await api.invoke('models.active', {})).model!;
    expect(first.settings.patchcoreHead).toBe(true);
    // Provisional (no earlier choice): the head counts as set, with a heatmap of its own grid.
    const provisional = await api.invoke('images.get', { id: setup.ids[8]! });
    expect(Object.keys(provisional.scoreDetail!.perHead)).toContain('patchcore');
    expect(Number.isFinite(provisional.scoreDetail!.perHead.patchcore)).toBe(true);

    await waitFor(() => events.some((e) => e.event === 'validation.finished'), 'validation', 240_000);
    expect(events.find((e) => e.event === 'validation.finished')!.payload).toMatchObject({ status: 'done' });
    await waitFor(
      () => events.filter((e) => e.event === 'scoring.finished').length === 2,
      're-scoring',
      120_000,
    );
    const project = (await api.invoke('project.current', {}))!;
    const manifest = JSON.parse(
      readFileSync(join(project.path, 'models', `run-${runId}`, 'manifest.json'), 'utf8'),
    ) as { combination?: { rule: string; patchcoreScale?: number; supervisedWeight: number } };
    expect(manifest.combination!.rule).not.toMatch(/provisional/);
    expect(manifest.combination!.supervisedWeight).toBeTypeOf('number');
    // The head counts as set: no scale chosen, and the re-scored queue still has it.
    expect(manifest.combination!.patchcoreScale).toBeUndefined();
    const chosen = await api.invoke('images.get', { id: setup.ids[8]! });
    expect(Number.isFinite(chosen.scoreDetail!.perHead.patchcore)).toBe(true);

    const from = events.length;
    await api.invoke('training.start', { settings: { steps: 5, pseudoPoolPerImage: 1, validateFolds: 0 } });
    await waitFor(
      () => events.slice(from).some((e) => e.event === 'scoring.finished'),
      'second training and scoring',
      240_000,
    );
    const second = (await api.invoke('models.active', {})).model!;
    expect(second.version).toBe(2);
    expect(second.settings.patchcoreHead).toBe(false);
    const plain = await api.invoke('images.get', { id: setup.ids[8]! });
    expect(Object.keys(plain.scoreDetail!.perHead)).not.toContain('patchcore');
  }, 600_000);

  it('rejects a PatchCore setting that is not a boolean, and starts no run', async () => {
    const before = (await api.invoke('training.runs', {})).runs.length;
    await expect(
      api.invoke('training.start', { settings: { patchcoreHead: 'yes' } as never }),
    ).rejects.toThrow(/patchcoreHead/);
    expect((await api.invoke('training.runs', {})).runs.length).toBe(before);
  });
});
