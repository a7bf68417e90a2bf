import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BACKBONE_DIR_NAME, locateBackbone, RESNET50_FOLDER, useBackbone } from '../../../src-main/app-paths';
import { MOBILENET_DIR_NAME, RESNET50_DIR_NAME } from '../../../src-main/engine/backbone';
import { tempDir } from '../app/helpers';

function backboneAt(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.json'), '{}');
  return dir;
}

describe('finding the bundled backbone', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir('swan-paths-');
  });
  afterEach(() => tmp.cleanup());

  it('uses the engine folder names', () => {
    expect(BACKBONE_DIR_NAME).toBe(MOBILENET_DIR_NAME);
    expect(RESNET50_FOLDER.dirName).toBe(RESNET50_DIR_NAME);
  });

  it('packaged: the optional accurate backbone is found beside MobileNet and told through SWAN_RESNET50_DIR', () => {
    const resources = join(tmp.dir, 'resources');
    backboneAt(join(resources, 'models', BACKBONE_DIR_NAME));
    const env: NodeJS.ProcessEnv = {};
    const app = join(resources, 'app.asar');
    useBackbone({ resourcesPath: resources, appRoot: app, env });
    expect(env.SWAN_RESNET50_DIR).toBeUndefined(); // absent: nothing is set, MobileNet still is
    expect(env.SWAN_BACKBONE_DIR).toBeDefined();
    const resnet = join(resources, 'models', RESNET50_DIR_NAME);
    mkdirSync(join(resnet, 'weights'), { recursive: true });
    useBackbone({ resourcesPath: resources, appRoot: app, env });
    expect(env.SWAN_RESNET50_DIR).toBe(resnet);
  });

  it('development: ../shared/models beside the repository, or resources/models after copy-backbone', () => {
    const repo = join(tmp.dir, 'work', 'main');
    mkdirSync(repo, { recursive: true });
    const shared = backboneAt(join(tmp.dir, 'work', 'shared', 'models', BACKBONE_DIR_NAME));
    const r = locateBackbone({ appRoot: repo, env: {} });
    expect(r).toMatchObject({ ok: true, dir: shared, from: '../shared/models (development)' });
    const copied = backboneAt(join(repo, 'resources', 'models', BACKBONE_DIR_NAME));
    expect(locateBackbone({ appRoot: repo, env: {} })).toMatchObject({ ok: true, dir: copied });
  });

  it('packaged: <resourcesPath>/models first, and the engine is told through SWAN_BACKBONE_DIR', () => {
    const resources = join(tmp.dir, 'opt', 'Swan Inspector', 'resources');
    const bundled = backboneAt(join(resources, 'models', BACKBONE_DIR_NAME));
    // Inside the asar there is no resources/ folder: appRoot is the asar's package.json folder.
    const env: NodeJS.ProcessEnv = {};
    const r = useBackbone({ resourcesPath: resources, appRoot: join(resources, 'app.asar'), env });
    expect(r).toMatchObject({ ok: true, dir: bundled, from: 'app resources' });
    expect(env.SWAN_BACKBONE_DIR).toBe(bundled);
  });

  it('missing: a clear message listing every path looked in; the environment is left alone', () => {
    const resources = join(tmp.dir, 'resources');
    const repo = join(tmp.dir, 'repo');
    const env: NodeJS.ProcessEnv = {};
    const r = useBackbone({ resourcesPath: resources, appRoot: repo, env });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.lookedIn).toEqual([
      join(resources, 'models', BACKBONE_DIR_NAME),
      join(repo, 'resources', 'models', BACKBONE_DIR_NAME),
      join(tmp.dir, 'shared', 'models', BACKBONE_DIR_NAME),
    ]);
    for (const p of r.lookedIn) expect(r.message).toContain(p);
    expect(r.message).toMatch(/was not found: no model\.json in/);
    expect(env.SWAN_BACKBONE_DIR).toBeUndefined();
  });

  it('an explicit SWAN_BACKBONE_DIR wins, and a wrong one is reported, not replaced', () => {
    const repo = join(tmp.dir, 'repo');
    backboneAt(join(repo, 'resources', 'models', BACKBONE_DIR_NAME));
    const mine = backboneAt(join(tmp.dir, 'mine'));
    expect(locateBackbone({ appRoot: repo, env: { SWAN_BACKBONE_DIR: mine } })).toMatchObject({
      ok: true,
      dir: mine,
      from: 'SWAN_BACKBONE_DIR',
    });
    const wrong = locateBackbone({ appRoot: repo, env: { SWAN_BACKBONE_DIR: join(tmp.dir, 'typo') } });
    expect(wrong).toMatchObject({ ok: false, lookedIn: [join(tmp.dir, 'typo')] });
    if (!wrong.ok) expect(wrong.message).toMatch(/SWAN_BACKBONE_DIR is set but does not hold the backbone/);
  });

  it('finds the real shared backbone from this repository', () => {
    const r = locateBackbone({ env: {} });
    expect(r.ok).toBe(true);
  });
});
