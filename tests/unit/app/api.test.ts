import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { operations, opNames } from '../../../src-main/api/contract';
import { ApiService, validate } from '../../../src-main/api/service';
import { makePng, tempDir } from './helpers';

describe('API contract and validation', () => {
  let tmp: ReturnType<typeof tempDir>;
  let api: ApiService;
  beforeEach(() => {
    tmp = tempDir();
    api = new ApiService({ projectsRoot: join(tmp.dir, 'projects') });
  });
  afterEach(async () => {
    await api.close();
    tmp.cleanup();
  });

  it('every operation has an input and an output schema', () => {
    expect(opNames.length).toBeGreaterThan(20);
    for (const op of opNames) {
      expect(typeof operations[op].input.safeParse).toBe('function');
      expect(typeof operations[op].output.safeParse).toBe('function');
    }
  });

  it('rejects bad payloads with messages that name the operation and the field', async () => {
    const cases: [string, unknown, RegExp][] = [
      ['project.create', { name: '' }, /project\.create: name: project name must not be empty/],
      ['project.create', { name: 'x', extra: 1 }, /project\.create: payload: .*extra/i],
      ['project.open', {}, /project\.open: path:/],
      ['images.list', { limit: 0 }, /images\.list: limit:/],
      ['images.list', { filter: { label: 'meh' } }, /images\.list: filter\.label:/],
      ['images.get', { id: -3 }, /images\.get: id:/],
      ['images.get', { id: '7' }, /images\.get: id:/],
      ['labels.set', { ids: [], label: 'good' }, /labels\.set: ids: select at least one image/],
      [
        'labels.set',
        { ids: [1], label: 'good', classId: 2 },
        /a defect class can only be given with label "defect"/,
      ],
      ['import.run', { source: { kind: 'zip', root: '/x' } }, /import\.run: source\.kind:/],
      ['import.run', { source: { kind: 'paths', paths: [] } }, /give at least one path/],
      ['training.start', { settings: { steps: -1 } }, /training\.start: settings\.steps:/],
      ['training.start', { settings: { inputSize: 300 } }, /training\.start: settings\.inputSize:/],
      // The app offers the fast and the accurate backbone; ResNet-18 ships without weights.
      ['training.start', { settings: { backbone: 'resnet18' } }, /training\.start: settings\.backbone:/],
      [
        'training.start',
        { settings: { pseudo: 'outlier', outlierDir: 'relative/dir' } },
        /training\.start: settings\.outlierDir: must be an absolute path/,
      ],
      ['threshold.set', { threshold: 'high' }, /threshold\.set: threshold:/],
      ['threshold.set', {}, /threshold\.set: payload: give either threshold or falseAlarmRate/],
      ['threshold.set', { falseAlarmRate: 2 }, /falseAlarmRate must be between 0 and 0\.5/],
    ];
    for (const [op, payload, msg] of cases) {
      const r = await api.call(op, payload);
      expect(r.ok, `${op} ${JSON.stringify(payload)}`).toBe(false);
      if (!r.ok) {
        expect(r.error.code).toBe('invalid_input');
        expect(r.error.message).toMatch(msg);
      }
    }
    // The same rules through the helper the front doors share.
    expect(() => validate('images.get', { id: 0 })).toThrow(/images\.get: id/);
    expect(validate('images.list', {})).toEqual({ offset: 0, limit: 100, sort: 'imported' });
  });

  it('unknown operations and operations without a project get typed errors', async () => {
    expect(await api.call('project.delete', {})).toEqual({
      ok: false,
      error: { code: 'unknown_operation', message: 'unknown operation "project.delete"' },
    });
    const r = await api.call('images.list', {});
    expect(r).toMatchObject({ ok: false, error: { code: 'no_project' } });
    expect(await api.call('project.current', {})).toEqual({ ok: true, data: null });
  });

  it('projects: create, list recent, close, reopen', async () => {
    const p = await api.invoke('project.create', { name: 'Line 3 / brackets' });
    expect(p.name).toBe('Line 3 / brackets');
    expect(p.path).toBe(join(tmp.dir, 'projects', 'Line 3 _ brackets'));
    const dup = await api.call('project.create', { name: 'Line 3 / brackets' });
    expect(dup).toMatchObject({ ok: false, error: { code: 'conflict' } });
    await api.invoke('project.close', {});
    expect(await api.invoke('project.current', {})).toBeNull();
    const recent = await api.invoke('project.listRecent', {});
    expect(recent.projects[0]).toMatchObject({ path: p.path, name: p.name, exists: true });
    const reopened = await api.invoke('project.open', { path: p.path });
    expect(reopened.name).toBe(p.name);
    const missing = await api.call('project.open', { path: join(tmp.dir, 'nope') });
    expect(missing).toMatchObject({ ok: false, error: { code: 'not_found' } });
  });

  it('labels many images at once, with a class by name, and unlabels', async () => {
    await api.invoke('project.create', { name: 'L' });
    const files = [];
    for (let k = 0; k < 3; k++) {
      const f = join(tmp.dir, `i${k}.png`);
      await makePng(f, { seed: k + 1 });
      files.push(f);
    }
    const { importedIds: ids } = await api.invoke('import.run', { source: { kind: 'paths', paths: files } });
    const events: string[] = [];
    api.on((e) => events.push(e.event));
    expect(await api.invoke('labels.set', { ids, label: 'defect', className: 'Dent' })).toEqual({
      updated: 3,
    });
    expect(events).toContain('project.changed');
    await api.invoke('labels.set', { ids: [ids[0]], label: 'unlabelled' });
    await api.invoke('labels.set', { ids: [ids[1]], label: 'good' });
    const classes = await api.invoke('classes.list', {});
    expect(classes.classes).toEqual([{ id: expect.any(Number), name: 'Dent', count: 1 }]);
    // Same class, other case: no duplicate class.
    expect((await api.invoke('classes.create', { name: 'dent' })).id).toBe(classes.classes[0].id);
    const labels = (await api.invoke('images.list', { sort: 'imported' })).items.map((i) => [
      i.label,
      i.className,
    ]);
    expect(labels).toEqual([
      ['unlabelled', null],
      ['good', null],
      ['defect', 'Dent'],
    ]);
    const bad = await api.call('labels.set', { ids: [ids[0], 4242], label: 'good' });
    expect(bad).toMatchObject({
      ok: false,
      error: { code: 'not_found', message: expect.stringMatching(/4242/) },
    });
    expect((await api.invoke('images.get', { id: ids[0] })).label).toBe('unlabelled');
  });

  it('training without enough good labels is refused with a clear message; threshold needs a model', async () => {
    await api.invoke('project.create', { name: 'T' });
    const r = await api.call('training.start', {});
    expect(r).toMatchObject({
      ok: false,
      error: { code: 'invalid_input', message: expect.stringMatching(/at least 2 images labelled good/) },
    });
    const t = await api.call('threshold.set', { threshold: 1 });
    expect(t).toMatchObject({
      ok: false,
      error: { code: 'not_found', message: expect.stringMatching(/no active model/) },
    });
    expect(await api.invoke('threshold.histogram', {})).toEqual({
      min: null,
      max: null,
      threshold: null,
      bins: [],
    });
    expect(await api.call('scoring.start', {})).toMatchObject({ ok: false, error: { code: 'not_found' } });
  });
});
