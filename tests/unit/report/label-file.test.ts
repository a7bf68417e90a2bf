/** A data set's own label file, mapped by columns; evaluation-only batches never train. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiService } from '../../../src-main/api/service';
import { ProjectStore } from '../../../src-main/project/store';
import { tempDir } from '../app/helpers';
import { buildProject, type SyntheticImage } from './helpers';

const images: SyntheticImage[] = ['000.png', '001.png', '002.png', '003.png'].map((name) => ({
  name,
  batch: 'ct',
  total: null,
}));

describe('labels.importFile and evaluation-only batches', () => {
  let tmp: ReturnType<typeof tempDir>;
  let api: ApiService;
  beforeEach(() => {
    tmp = tempDir('swan-label-file-');
    api = new ApiService({ projectsRoot: join(tmp.dir, 'projects') });
  });
  afterEach(async () => {
    await api.close();
    tmp.cleanup();
  });

  it("maps HeadCT's `id, hemorrhage` columns to head_ct/{id:03}.png; a failed match names the paths tried", async () => {
    // buildProject puts the images in <dir>/images: the label file sits next to that folder.
    const b = await buildProject(tmp.dir, images, { model: false });
    b.store.close();
    await api.invoke('project.open', { path: join(tmp.dir, 'project') });
    const file = join(tmp.dir, 'labels.csv');
    writeFileSync(file, 'id, hemorrhage\n0,1\n1,0\n2,1\n7,0\n');
    const mapping = { file, idColumn: 'id', pathTemplate: 'images/{id:03}.png', labelColumn: 'hemorrhage' };
    const r = await api.invoke('labels.importFile', { ...mapping, defectValues: ['1'] });
    expect(r).toEqual({
      labelled: 3,
      good: 1,
      defect: 2,
      unmatched: 1,
      tried: [join(tmp.dir, 'images', '007.png')],
    });
    const list = await api.invoke('images.list', { offset: 0, limit: 10, sort: 'name' });
    expect(list.items.map((i) => i.label)).toEqual(['defect', 'good', 'defect', 'unlabelled']);

    const wrong = await api.call('labels.importFile', { ...mapping, pathTemplate: 'head_ct/{id:03}.png' });
    expect(wrong).toMatchObject({
      ok: false,
      error: {
        code: 'invalid_input',
        message: expect.stringContaining(`tried ${join(tmp.dir, 'head_ct', '000.png')}, ${join(tmp.dir, 'head_ct', '001.png')}`),
      },
    });
    const noColumn = await api.call('labels.importFile', { ...mapping, labelColumn: 'bleed' });
    expect(noColumn).toMatchObject({
      ok: false,
      error: { message: expect.stringMatching(/no column "bleed" \(columns: id, hemorrhage\)/) },
    });
    const missing = await api.call('labels.importFile', { ...mapping, file: join(tmp.dir, 'nope.csv') });
    expect(missing).toMatchObject({ ok: false, error: { message: expect.stringMatching(/cannot read the label file/) } });
  });

  it('an evaluation-only batch keeps its labels out of training and says so in the batch list', async () => {
    const b = await buildProject(
      tmp.dir,
      [
        { name: 'a.png', batch: 'train', label: 'good', total: null, file: true },
        { name: 'b.png', batch: 'train', label: 'good', total: null, file: true },
        { name: 'c.png', batch: 'eval', label: 'good', total: null, file: true },
        { name: 'd.png', batch: 'eval', label: 'defect', total: null, file: true },
      ],
      { model: false },
    );
    b.store.close();
    await api.invoke('project.open', { path: join(tmp.dir, 'project') });
    expect(await api.invoke('images.setEvaluation', { batch: 'eval', evaluationOnly: true })).toEqual({
      batch: 'eval',
      evaluationOnly: true,
    });
    const batches = await api.invoke('images.batches', {});
    expect(batches.batches.map((x) => [x.name, x.evaluationOnly])).toEqual([
      ['train', false],
      ['eval', true],
    ]);
    expect(await api.call('images.setEvaluation', { batch: 'nope', evaluationOnly: true })).toMatchObject({
      ok: false,
      error: { code: 'not_found' },
    });
    await api.invoke('project.close', {});
    const store = ProjectStore.open(join(tmp.dir, 'project'));
    const set = store.trainingSet();
    expect(set.normals.map((n) => n.path.split('/').pop())).toEqual(['a.png', 'b.png']);
    expect(set.anomalies).toEqual([]);
    store.close();
  });
});
