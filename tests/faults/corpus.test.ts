/**
 * Bad inputs through the real browser-mode server (HTTP, token, JSON): every one gets a clear
 * error (or, where the input is merely unusual, is handled) and the project is intact after
 * it: same images, labels, active model, models, and `PRAGMA integrity_check` ok. Every input
 * is made here (sharp, zlib, yazl); nothing large is committed.
 */
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import sharp from 'sharp';
import yazl from 'yazl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src-main/server/server';
import { FAKE_ENGINE, makeJpeg, makePng, tempDir, waitFor, writeHugePngHeader } from '../unit/app/helpers';

interface Reply {
  status: number;
  json: { ok: boolean; data?: any; error?: { code: string; message: string } };
}

let tmp: ReturnType<typeof tempDir>;
let srv: RunningServer;
let port: number;
let projectDir: string;
let baseline: string;

function post(op: string, body: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((ok, fail) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: `/api/${op}`,
        method: 'POST',
        headers: { authorization: `Bearer ${srv.token}`, 'content-type': 'application/json', ...headers },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => ok({ status: res.statusCode ?? 0, json: JSON.parse(text) as Reply['json'] }));
      },
    );
    req.on('error', fail);
    req.end(body);
  });
}
const api = (op: string, payload: unknown) => post(op, JSON.stringify(payload));

/** What must not change: images, labels, models, the active one, and the database's integrity. */
async function snapshot(): Promise<string> {
  const info = (await api('project.current', {})).json.data;
  const models = (await api('models.list', {})).json.data.models.map((m: { id: number; active: boolean }) => [
    m.id,
    m.active,
  ]);
  const labels = (await api('images.list', { limit: 500 })).json.data.items.map(
    (i: { id: number; label: string | null }) => [i.id, i.label],
  );
  const db = (srv.service as unknown as { store: { db: Database.Database } }).store.db;
  return JSON.stringify({
    path: info.path,
    counts: info.counts,
    imageCount: info.imageCount,
    active: info.activeModelId,
    models,
    labels,
    integrity: db.pragma('integrity_check', { simple: true }),
    leftovers: readdirSync(join(projectDir, 'models')).filter((d) => d.startsWith('.')),
  });
}

async function zip(
  file: string,
  entries: { name: string; data: Buffer }[],
  rename?: [string, string],
): Promise<string> {
  const z = new yazl.ZipFile();
  for (const e of entries) z.addBuffer(e.data, e.name);
  z.end();
  const chunks: Buffer[] = [];
  for await (const c of z.outputStream) chunks.push(c as Buffer);
  let buf = Buffer.concat(chunks);
  if (rename) buf = Buffer.from(buf.toString('latin1').split(rename[0]).join(rename[1]), 'latin1');
  writeFileSync(file, buf);
  return file;
}

/** Sets the uncompressed size of every entry (local header and central directory) to `size`. */
function forgeSizes(file: string, size: number): string {
  const buf = readFileSync(file);
  for (let i = 0; i < buf.length - 4; i++) {
    const sig = buf.readUInt32LE(i);
    if (sig === 0x04034b50) buf.writeUInt32LE(size, i + 22);
    else if (sig === 0x02014b50) buf.writeUInt32LE(size, i + 24);
  }
  writeFileSync(file, buf);
  return file;
}

const manifest = (over: Record<string, unknown> = {}) =>
  Buffer.from(
    JSON.stringify({
      formatVersion: 1,
      createdAt: '2026-01-01',
      backbone: { id: 'mobilenet_v1_0.75', inputSize: 224, featureLayer: 'conv_pw_13_relu', levels: 2 },
      settings: { seed: 0 },
      seed: 0,
      trainingImageIds: [],
      reference: { shapes: [] },
      calibration: {},
      metrics: {},
      files: { 'state.json': { sha256: '0'.repeat(64), bytes: 2 } },
      ...over,
    }),
  );

beforeAll(async () => {
  tmp = tempDir('swan-corpus-');
  const web = join(tmp.dir, 'web');
  mkdirSync(web);
  writeFileSync(join(web, 'index.html'), '<!doctype html><title>Swan</title>');
  srv = await startServer({
    staticDir: web,
    projectsRoot: join(tmp.dir, 'projects'),
    worker: { engineModule: FAKE_ENGINE },
  });
  port = Number(new URL(srv.url).port);
  projectDir = (await api('project.create', { name: 'Corpus' })).json.data.path;
  const files: string[] = [];
  for (let k = 0; k < 4; k++) {
    const f = join(tmp.dir, `ok${k}.png`);
    await makePng(f, { seed: k + 1, brightness: 60 + k * 40 });
    files.push(f);
  }
  const ids = (await api('import.run', { source: { kind: 'paths', paths: files } })).json.data.importedIds;
  await api('labels.set', { ids: ids.slice(0, 3), label: 'good' });
  await api('labels.set', { ids: [ids[3]], label: 'defect', className: 'spot' });
  await api('training.start', { settings: { steps: 2 } });
  await waitFor(async () => (await api('models.active', {})).json.data.model !== null, 'a model');
  await waitFor(async () => (await api('scoring.status', {})).json.data.job === null, 'scoring');
  baseline = await snapshot();
}, 60_000);
afterAll(async () => {
  await srv.close();
  tmp.cleanup();
});

type Case = [name: string, make: () => Promise<Reply>, check: (r: Reply) => void];

const refused =
  (status: number, code: string, message: RegExp) =>
  (r: Reply): void => {
    expect(r.status).toBe(status);
    expect(r.json.ok).toBe(false);
    expect(r.json.error?.code).toBe(code);
    expect(r.json.error?.message).toMatch(message);
  };
/** The import answers, recording nothing, and names the file with its reason. */
const skipped =
  (reason: RegExp) =>
  (r: Reply): void => {
    expect(r.status).toBe(200);
    expect(r.json.data.imported).toBe(0);
    expect(r.json.data.skipped.map((s: { reason: string }) => s.reason).join(' | ')).toMatch(reason);
  };
/** An unusual but valid image: imported into a scratch project (below), converted to 8-bit RGB. */
const importsFine = (r: Reply): void => {
  expect(r.status).toBe(200);
  expect(r.json.data.skipped).toEqual([]);
};

const file = (name: string) => join(tmp.dir, name);
const importFile = (path: string) => api('import.run', { source: { kind: 'paths', paths: [path] } });

const cases: Case[] = [
  // Images ---------------------------------------------------------------------------------
  [
    'truncated PNG',
    async () => {
      await makePng(file('t.png'), { size: 64 });
      const b = readFileSync(file('t.png'));
      writeFileSync(file('t.png'), b.subarray(0, b.length >> 1));
      return importFile(file('t.png'));
    },
    skipped(/truncated or corrupt/),
  ],
  [
    'truncated JPEG',
    async () => {
      await makeJpeg(file('t.jpg'), 64);
      const b = readFileSync(file('t.jpg'));
      writeFileSync(file('t.jpg'), b.subarray(0, b.length >> 1));
      return importFile(file('t.jpg'));
    },
    skipped(/truncated or corrupt/),
  ],
  [
    'zero-byte file',
    async () => (writeFileSync(file('z.png'), ''), importFile(file('z.png'))),
    skipped(/empty file/),
  ],
  [
    'text named .png',
    async () => (writeFileSync(file('x.png'), 'hello'), importFile(file('x.png'))),
    skipped(/not an image/),
  ],
  [
    'HTML named .jpg',
    async () => (writeFileSync(file('h.jpg'), '<html><script>alert(1)</script>'), importFile(file('h.jpg'))),
    skipped(/not an image/),
  ],
  [
    '30000x30000 PNG header',
    async () => (writeHugePngHeader(file('huge.png')), importFile(file('huge.png'))),
    skipped(/too large: 30000x30000/),
  ],
  [
    'a folder named .png',
    async () => (mkdirSync(file('dir.png')), importFile(file('dir.png'))),
    (r) => expect(r.json.data.imported).toBe(0),
  ],
  ['missing file', () => importFile(file('absent.png')), skipped(/file not found/)],
  [
    'symlink to a non-image outside',
    async () => (symlinkSync('/etc/hostname', file('link.png')), importFile(file('link.png'))),
    skipped(/not an image|truncated/),
  ],
  [
    'dangling symlink',
    async () => (symlinkSync(file('nowhere.png'), file('dangle.png')), importFile(file('dangle.png'))),
    skipped(/file not found/),
  ],
  [
    'path traversal to /etc/passwd',
    () => importFile(`${tmp.dir}/../../../../../../etc/passwd`),
    skipped(/not an image/),
  ],
  // Unusual but valid images: must import (in a scratch folder, so the baseline stays).
  [
    '16-bit PNG',
    async () => {
      await sharp({ create: { width: 16, height: 16, channels: 3, background: '#808080' } })
        .toColourspace('rgb16')
        .png()
        .toFile(file('s16.png'));
      expect((await sharp(file('s16.png')).metadata()).depth).toBe('ushort');
      return scratchImport(file('s16.png'));
    },
    importsFine,
  ],
  [
    'CMYK JPEG',
    async () => {
      await sharp({ create: { width: 20, height: 20, channels: 3, background: '#3366cc' } })
        .toColourspace('cmyk')
        .jpeg()
        .toFile(file('cmyk.jpg'));
      expect((await sharp(file('cmyk.jpg')).metadata()).space).toBe('cmyk');
      return scratchImport(file('cmyk.jpg'));
    },
    importsFine,
  ],
  [
    'huge EXIF (60 KB of text)',
    async () => {
      await sharp({ create: { width: 20, height: 20, channels: 3, background: '#888' } })
        .withExif({ IFD0: { ImageDescription: 'x'.repeat(60_000), Orientation: '6' } })
        .jpeg()
        .toFile(file('exif.jpg'));
      return scratchImport(file('exif.jpg'));
    },
    importsFine,
  ],
  [
    'JPEG bytes under a .png name',
    async () => (await makeJpeg(file('misnamed.png'), 20), scratchImport(file('misnamed.png'))),
    importsFine,
  ],
  // Path-taking operations ------------------------------------------------------------------
  [
    'project.open with traversal',
    () => api('project.open', { path: `${projectDir}/../../../../etc` }),
    refused(404, 'not_found', /is not a Swan Inspector project/),
  ],
  [
    'project.create in a non-empty folder',
    () => api('project.create', { name: 'x', dir: '/etc' }),
    refused(409, 'conflict', /not empty|already/),
  ],
  [
    'import mvtec root outside',
    () => api('import.run', { source: { kind: 'mvtec', root: '/etc/../etc' } }),
    (r) => expect(r.json.ok ? r.json.data.imported : 0).toBe(0),
  ],
  [
    'import folders root traversal',
    () => api('import.run', { source: { kind: 'folders', root: '../../../../etc' } }),
    refused(400, 'invalid_input', /no folder of good images/),
  ],
  [
    'import csv /etc/passwd',
    () => api('import.run', { source: { kind: 'csv', file: '/etc/passwd' } }),
    (r) => {
      expect(r.json.ok ? r.json.data.imported : 0).toBe(0);
      if (!r.json.ok) expect(r.json.error?.message).toMatch(/passwd/);
    },
  ],
  [
    'upload with a traversal name',
    () =>
      api('import.upload', {
        files: [{ name: '../../../evil.png', dataBase64: Buffer.from('nope').toString('base64') }],
      }),
    (r) => {
      skipped(/not an image/)(r);
      expect(r.json.data.skipped[0].name).toBe('evil.png');
      expect(r.json.data.skipped[0].path.startsWith(join(projectDir, 'uploads'))).toBe(true);
    },
  ],
  [
    'models.import /etc/passwd',
    () => api('models.import', { file: '/etc/passwd' }),
    refused(400, 'invalid_input', /not a complete|could not be read/),
  ],
  [
    'models.import a folder',
    () => api('models.import', { file: '/etc' }),
    refused(404, 'not_found', /does not exist or is not a file/),
  ],
  [
    'models.export into /proc',
    async () => {
      const id = (await api('models.active', {})).json.data.model.id;
      return api('models.export', { id, file: '/proc/evil.swanmodel' });
    },
    (r) => expect(r.json.ok).toBe(false),
  ],
  [
    'report.export into /proc',
    () => api('report.export', { format: 'csv', outDir: '/proc/swan-evil' }),
    refused(403, 'read_only', /Cannot write the report/),
  ],
  // Model archives ---------------------------------------------------------------------------
  [
    'not a zip',
    async () => (
      writeFileSync(file('n.swanmodel'), 'PK not really'),
      api('models.import', { file: file('n.swanmodel') })
    ),
    refused(400, 'invalid_input', /nothing was imported/i),
  ],
  [
    'truncated zip',
    async () => {
      const f = await zip(file('tr.swanmodel'), [
        { name: 'manifest.json', data: manifest() },
        { name: 'state.json', data: Buffer.alloc(5000, 7) },
      ]);
      const b = readFileSync(f);
      writeFileSync(f, b.subarray(0, b.length - 30));
      return api('models.import', { file: f });
    },
    refused(400, 'invalid_input', /damaged or truncated/),
  ],
  [
    'zip slip',
    async () =>
      api('models.import', {
        file: await zip(
          file('slip.swanmodel'),
          [
            { name: 'manifest.json', data: manifest() },
            { name: 'XX/XX/evil.txt', data: Buffer.from('x') },
          ],
          ['XX/XX/evil.txt', '../../evil.txt'],
        ),
      }),
    refused(400, 'invalid_input', /outside the model folder/),
  ],
  [
    'absolute entry',
    async () =>
      api('models.import', {
        file: await zip(
          file('abs.swanmodel'),
          [{ name: 'Xtmp/evil-abs.txt', data: Buffer.from('x') }],
          ['Xtmp/evil-abs.txt', '/tmp/evil-abs.txt'],
        ),
      }),
    refused(400, 'invalid_input', /outside the model folder/),
  ],
  [
    'too many entries',
    async () =>
      api('models.import', {
        file: await zip(
          file('many.swanmodel'),
          Array.from({ length: 70 }, (_, k) => ({ name: `f${k}.bin`, data: Buffer.from('x') })),
        ),
      }),
    refused(400, 'invalid_input', /more than 64 entries/),
  ],
  [
    'huge declared entry (4 GB)',
    async () =>
      api('models.import', {
        file: forgeSizes(
          await zip(file('huge.swanmodel'), [{ name: 'manifest.json', data: manifest() }]),
          0xfffffff0,
        ),
      }),
    refused(400, 'invalid_input', /far more than a manifest holds|damaged or truncated/),
  ],
  [
    'listed file far over the cap',
    async () =>
      api('models.import', {
        file: forgeSizes(
          await zip(file('cap.swanmodel'), [
            { name: 'state.json', data: Buffer.from('{}') },
            {
              name: 'manifest.json',
              data: manifest({ files: { 'state.json': { sha256: '0'.repeat(64), bytes: 0xfffffff0 } } }),
            },
          ]),
          0xfffffff0,
        ),
      }),
    refused(400, 'invalid_input', /nothing was imported/i),
  ],
  [
    'manifest not JSON',
    async () =>
      api('models.import', {
        file: await zip(file('nj.swanmodel'), [{ name: 'manifest.json', data: Buffer.from('{oops') }]),
      }),
    refused(400, 'invalid_input', /not valid JSON/),
  ],
  [
    'manifest with wrong types',
    async () =>
      api('models.import', {
        file: await zip(file('wt.swanmodel'), [
          {
            name: 'manifest.json',
            data: manifest({
              trainingImageIds: 'all',
              files: { 'state.json': { sha256: '0'.repeat(64), bytes: 2 } },
            }),
          },
          { name: 'state.json', data: Buffer.from('{}') },
        ]),
      }),
    refused(400, 'invalid_input', /Model file is corrupt: manifest\.json: [a-zA-Z.]+: /),
  ],
  [
    'manifest listing a file it lacks',
    async () =>
      api('models.import', {
        file: await zip(file('ml.swanmodel'), [{ name: 'manifest.json', data: manifest() }]),
      }),
    refused(400, 'invalid_input', /lists state\.json, which the file does not hold/),
  ],
  [
    'file name with a folder in the manifest',
    async () =>
      api('models.import', {
        file: await zip(file('fn.swanmodel'), [
          {
            name: 'manifest.json',
            data: manifest({ files: { '../x.bin': { sha256: '0'.repeat(64), bytes: 1 } } }),
          },
        ]),
      }),
    refused(400, 'invalid_input', /nothing was imported/i),
  ],
  [
    'another format version',
    async () =>
      api('models.import', {
        file: await zip(file('v9.swanmodel'), [
          { name: 'manifest.json', data: manifest({ formatVersion: 9, files: {} }) },
        ]),
      }),
    refused(400, 'invalid_input', /format version 9 is not supported/),
  ],
  // Bad JSON and bodies ---------------------------------------------------------------------
  [
    'body not JSON',
    () => post('labels.set', '{"ids": [1], '),
    refused(400, 'invalid_input', /not valid JSON/),
  ],
  ['body an array', () => post('labels.set', '[1,2,3]'), refused(400, 'invalid_input', /labels\.set: /)],
  [
    'wrong field types',
    () => api('labels.set', { ids: 'all', label: 'great' }),
    refused(400, 'invalid_input', /ids: .*label: /),
  ],
  [
    'unknown extra field',
    () => api('project.current', { sneaky: true }),
    refused(400, 'invalid_input', /project\.current: /),
  ],
  [
    'absurd numbers',
    () => api('images.list', { offset: -1, limit: 1e12 }),
    refused(400, 'invalid_input', /images\.list: /),
  ],
  [
    'unknown operation',
    () => post('project.delete', '{}'),
    refused(404, 'unknown_operation', /unknown operation/),
  ],
  [
    'oversize body (Content-Length 300 MB)',
    () => post('labels.set', '{}', { 'content-length': String(300 * 1024 ** 2) }),
    refused(413, 'too_large', /larger than/),
  ],
];

/** Valid-but-unusual images go into their own project so the corpus baseline stays fixed. */
async function scratchImport(path: string): Promise<Reply> {
  const scratch = join(tmp.dir, `scratch-${Math.random().toString(36).slice(2)}`);
  await api('project.create', { name: 'scratch', dir: scratch });
  const r = await importFile(path);
  if (r.json.ok) {
    const thumb = await new Promise<number>((ok) =>
      request(
        {
          host: '127.0.0.1',
          port,
          path: `/files/thumb/${r.json.data.importedIds[0]}`,
          headers: { authorization: `Bearer ${srv.token}` },
        },
        (res) => {
          res.resume();
          ok(res.statusCode ?? 0);
        },
      ).end(),
    );
    expect(thumb).toBe(200);
  }
  await api('project.open', { path: projectDir });
  return r;
}

describe('bad-input corpus through the real server', () => {
  it('holds at least 30 inputs', () => expect(cases.length).toBeGreaterThanOrEqual(30));
  it.each(cases)(
    '%s: a clear error (or, if valid, imported), the project intact',
    async (_name, make, check) => {
      const r = await make();
      check(r);
      expect(await snapshot()).toBe(baseline);
    },
  );
});
