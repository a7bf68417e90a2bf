import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { tempDir } from '../app/helpers';

const require = createRequire(import.meta.url);
const root = resolve(__dirname, '../../..');

interface Loaded {
  files: { filter: string[] }[];
  extraResources: { from: string; to: string; filter: string[] }[];
  asar: boolean;
  asarUnpack: string[];
  npmRebuild: boolean;
  linux: { target: string[]; maintainer: string; icon: string };
  win: { target: { target: string; arch: string[] }[]; icon: string };
  icon: string;
  nsis: Record<string, unknown>;
  directories: { output: string; buildResources: string };
}

async function loadConfig(file: string): Promise<Loaded> {
  const { getConfig, validateConfiguration } = require('app-builder-lib/out/util/config/config.js') as {
    getConfig(dir: string, file: string | null, cfg: null): Promise<unknown>;
    validateConfiguration(cfg: unknown, logger: unknown): Promise<void>;
  };
  const { DebugLogger } = require('builder-util') as { DebugLogger: new (on: boolean) => unknown };
  const cfg = await getConfig(root, file, null);
  // The same schema check electron-builder runs before packaging.
  await validateConfiguration(cfg, new DebugLogger(false));
  return cfg as Loaded;
}

describe('electron-builder configuration', () => {
  it('loads and passes electron-builder 26 validation, with Linux and Windows targets', async () => {
    const version = (require('electron-builder/package.json') as { version: string }).version;
    expect(Number(version.split('.')[0])).toBe(26);
    const c = await loadConfig('build/electron-builder.yml');
    expect(c.linux.target).toEqual(['AppImage', 'deb']);
    expect(c.linux.maintainer).toMatch(/<.+@.+>/);
    expect(c.win.target).toEqual([{ target: 'nsis', arch: ['x64'] }]);
    expect(c.nsis).toMatchObject({ oneClick: false });
    expect(c.directories).toEqual({ output: 'dist', buildResources: 'build' });
    // The built bundles are what ships (package.json "main" points into out/).
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      main: string;
      scripts: Record<string, string>;
    };
    expect(pkg.main.startsWith('./out/')).toBe(true);
    expect(c.files[0].filter).toContain('out/**/*');
    // The backbone goes to <resources>/models, where app-paths.ts looks when packaged.
    // The bundled backbones' licences go to <resources>/licenses.
    expect(c.extraResources).toEqual([
      { from: 'resources/models', to: 'models', filter: ['**/*'] },
      { from: 'resources/licenses', to: 'licenses', filter: ['**/*'] },
    ]);
    // Native modules are unpacked from the asar and rebuilt for Electron.
    expect(c.asar).toBe(true);
    expect(c.asarUnpack).toEqual(
      expect.arrayContaining([
        '**/*.node',
        '**/node_modules/sharp/**/*',
        '**/node_modules/@img/**/*',
        '**/node_modules/better-sqlite3/**/*',
      ]),
    );
    expect(c.npmRebuild).toBe(true);
    expect(pkg.scripts.dist).toBe(
      'electron-vite build && node scripts/copy-backbone.mjs && electron-builder --config build/electron-builder.yml',
    );
  });

  it('a configuration with an unknown option is refused by the same check', async () => {
    const tmp = tempDir('swan-builder-');
    try {
      const bad = join(tmp.dir, 'bad.yml');
      writeFileSync(
        bad,
        `${readFileSync(join(root, 'build/electron-builder.yml'), 'utf8')}\nnotAnOption: true\n`,
      );
      await expect(loadConfig(bad)).rejects.toThrow(/unknown property 'notAnOption'/);
    } finally {
      tmp.cleanup();
    }
  });

  it('points every platform at icons that exist: a PNG size set for Linux, one ICO for Windows and NSIS', async () => {
    const c = await loadConfig('build/electron-builder.yml');
    expect(c.linux.icon).toBe('build/icons');
    expect(c.win.icon).toBe('build/icon.ico');
    expect(c.nsis).toMatchObject({ installerIcon: 'build/icon.ico', uninstallerIcon: 'build/icon.ico' });
    expect(c.icon).toBe('build/icon.png');
    const sizes = readdirSync(join(root, 'build/icons')).sort((a, b) => parseInt(a) - parseInt(b));
    expect(sizes).toEqual([16, 24, 32, 48, 64, 128, 256, 512].map((n) => `${n}x${n}.png`));
    for (const f of sizes) {
      const n = parseInt(f);
      expect(await sharp(join(root, 'build/icons', f)).metadata()).toMatchObject({
        width: n,
        height: n,
        format: 'png',
      });
    }
    expect(await icoSizes(readFileSync(join(root, 'build/icon.ico')))).toEqual([
      16, 24, 32, 48, 64, 128, 256,
    ]);
  });

  it("ships the bundled backbones' licence (Apache-2.0) in resources/licenses", () => {
    const text = readFileSync(join(root, 'resources/licenses/Apache-2.0.txt'), 'utf8');
    expect(text).toMatch(/Apache License\s+Version 2\.0, January 2004/);
    expect(text).toContain('END OF TERMS AND CONDITIONS');
    const notes = readFileSync(join(root, 'resources/licenses/BACKBONES.txt'), 'utf8');
    expect(notes).toMatch(/mobilenet_v1_0\.75_224\/[\s\S]*Licence: Apache License 2\.0/);
    expect(notes).toMatch(/resnet50_v2_imagenet\/[\s\S]*Licence: Apache License 2\.0/);
  });

  it('git ignores the copied weights', () => {
    const out = execFileSync('git', ['check-ignore', 'resources/models/mobilenet_v1_0.75_224/model.json'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(out.trim()).toBe('resources/models/mobilenet_v1_0.75_224/model.json');
  });
});

/** The image sizes of an ICO file, each entry checked to be a PNG of the size its directory says. */
async function icoSizes(buf: Buffer): Promise<number[]> {
  expect(buf.readUInt16LE(0)).toBe(0);
  expect(buf.readUInt16LE(2)).toBe(1);
  const out: number[] = [];
  for (let i = 0; i < buf.readUInt16LE(4); i++) {
    const e = 6 + 16 * i;
    const size = buf.readUInt8(e) || 256;
    const png = buf.subarray(buf.readUInt32LE(e + 12), buf.readUInt32LE(e + 12) + buf.readUInt32LE(e + 8));
    expect(await sharp(png).metadata()).toMatchObject({ format: 'png', width: size, height: size });
    out.push(size);
  }
  return out;
}

describe('scripts/make-icons.mjs', () => {
  it('renders the SVG into the Linux PNG sizes, icon.png and a multi-size ICO', async () => {
    const tmp = tempDir('swan-icons-');
    try {
      const r = spawnSync(process.execPath, [join(root, 'scripts/make-icons.mjs')], {
        env: { ...process.env, SWAN_ICON_OUT: tmp.dir },
        encoding: 'utf8',
      });
      expect(r.status, r.stderr).toBe(0);
      expect(readdirSync(join(tmp.dir, 'icons'))).toHaveLength(8);
      expect(await sharp(join(tmp.dir, 'icon.png')).metadata()).toMatchObject({ width: 512, height: 512 });
      expect(await icoSizes(readFileSync(join(tmp.dir, 'icon.ico')))).toEqual([16, 24, 32, 48, 64, 128, 256]);
      // Not a blank square: the glyph has light and dark pixels.
      const { data } = await sharp(join(tmp.dir, 'icons', '64x64.png'))
        .greyscale()
        .raw()
        .toBuffer({
          resolveWithObject: true,
        });
      expect(Math.max(...data) - Math.min(...data)).toBeGreaterThan(150);
    } finally {
      tmp.cleanup();
    }
  });
});

describe('scripts/copy-backbone.mjs', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir('swan-copy-');
  });
  afterEach(() => tmp.cleanup());

  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, [join(root, 'scripts/copy-backbone.mjs')], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
    });

  function fakeBackbone(dir: string, withAllShards = true): void {
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'model.json'),
      JSON.stringify({ weightsManifest: [{ paths: ['group1-shard1of1', 'group2-shard1of1'] }] }),
    );
    writeFileSync(join(dir, 'group1-shard1of1'), Buffer.alloc(64));
    if (withAllShards) writeFileSync(join(dir, 'group2-shard1of1'), Buffer.alloc(64));
  }

  it('copies a complete backbone from SWAN_BACKBONE_SRC to the destination', () => {
    fakeBackbone(join(tmp.dir, 'src'));
    const dest = join(tmp.dir, 'res', 'models', 'mobilenet_v1_0.75_224');
    const resnet = join(tmp.dir, 'resnet');
    mkdirSync(join(resnet, 'weights'), { recursive: true });
    writeFileSync(join(resnet, 'weights', 'resnetv24_conv0_weight.npy'), Buffer.alloc(64));
    const r = run({
      SWAN_BACKBONE_SRC: join(tmp.dir, 'src'),
      SWAN_BACKBONE_DEST: dest,
      SWAN_RESNET50_SRC: resnet,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/2 weight files/);
    expect(readdirSync(dest).sort()).toEqual(['group1-shard1of1', 'group2-shard1of1', 'model.json']);
    // The accurate backbone's weights go beside it.
    expect(readdirSync(join(tmp.dir, 'res', 'models', 'resnet50_v2_imagenet', 'weights'))).toEqual([
      'resnetv24_conv0_weight.npy',
    ]);
    const none = run({
      SWAN_BACKBONE_SRC: join(tmp.dir, 'src'),
      SWAN_BACKBONE_DEST: dest,
      SWAN_RESNET50_SRC: join(tmp.dir, 'no'),
    });
    expect(none.status, none.stderr).toBe(0);
    expect(none.stdout).toMatch(/accurate backbone \(resnet50\) is not bundled/);
  });

  it('fails clearly, naming the folder, when the backbone is absent or incomplete', () => {
    const dest = join(tmp.dir, 'dest');
    const missing = run({ SWAN_BACKBONE_SRC: join(tmp.dir, 'nowhere'), SWAN_BACKBONE_DEST: dest });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain(`backbone folder not found: ${join(tmp.dir, 'nowhere')}`);
    fakeBackbone(join(tmp.dir, 'half'), false);
    const half = run({ SWAN_BACKBONE_SRC: join(tmp.dir, 'half'), SWAN_BACKBONE_DEST: dest });
    expect(half.status).toBe(1);
    expect(half.stderr).toMatch(/is incomplete: missing group2-shard1of1/);
  });
});
