#!/usr/bin/env node
/* global process */
/**
 * Copies the pretrained backbone into resources/models/ before packaging, where
 * electron-builder's extraResources picks it up (the app finds it at
 * <resources>/models/<name> when installed). The weights are never committed:
 * resources/models/ is ignored by git.
 *   node scripts/copy-backbone.mjs            from ../shared/models/mobilenet_v1_0.75_224
 *   SWAN_BACKBONE_SRC=DIR node scripts/...    from DIR
 *   SWAN_BACKBONE_DEST=DIR                    to DIR instead of resources/models/<name> (tests)
 * Then the optional accurate backbone (ResNet-50 v2 stages 1-3, its weights/ folder) beside it,
 * from SWAN_RESNET50_SRC or ../shared/models/resnet50_v2_imagenet; skipped with a note when absent.
 */
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const NAME = 'mobilenet_v1_0.75_224';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = resolve(process.env.SWAN_BACKBONE_SRC ?? join(root, '..', 'shared', 'models', NAME));
const dest = resolve(process.env.SWAN_BACKBONE_DEST ?? join(root, 'resources', 'models', NAME));

function fail(message) {
  process.stderr.write(`copy-backbone: ${message}\n`);
  process.exit(1);
}

if (!existsSync(src) || !statSync(src).isDirectory()) {
  fail(
    `backbone folder not found: ${src}\nPut ${NAME} in ../shared/models or set SWAN_BACKBONE_SRC to its folder.`,
  );
}
const manifestFile = join(src, 'model.json');
if (!existsSync(manifestFile)) fail(`${src} holds no model.json: not a TF.js model folder.`);
// Every weight file the topology names must be there, or the packaged app would fail at first use.
let model;
try {
  model = JSON.parse(readFileSync(manifestFile, 'utf8'));
} catch (err) {
  fail(`${manifestFile} is not valid JSON (${err.message}).`);
}
const paths = (model.weightsManifest ?? []).flatMap((g) => g.paths ?? []);
const absent = paths.filter((p) => !existsSync(join(src, p)));
if (paths.length === 0 || absent.length > 0) {
  fail(
    `${src} is incomplete: ${paths.length === 0 ? 'model.json lists no weight files' : `missing ${absent.slice(0, 5).join(', ')}`}.`,
  );
}
rmSync(dest, { recursive: true, force: true });
cpSync(src, dest, { recursive: true });
const bytes = readdirSync(dest).reduce((n, f) => n + statSync(join(dest, f)).size, 0);
process.stdout.write(
  `copy-backbone: ${src} -> ${dest} (${paths.length} weight files, ${(bytes / 2 ** 20).toFixed(1)} MB)\n`,
);

const RESNET50 = 'resnet50_v2_imagenet';
const resnetSrc = resolve(process.env.SWAN_RESNET50_SRC ?? join(root, '..', 'shared', 'models', RESNET50));
const resnetDest = join(dirname(dest), RESNET50);
const resnetWeights = join(resnetSrc, 'weights');
if (!existsSync(resnetWeights) || !statSync(resnetWeights).isDirectory()) {
  process.stdout.write(
    `copy-backbone: no ${resnetWeights}: the accurate backbone (resnet50) is not bundled\n`,
  );
} else {
  const files = readdirSync(resnetWeights).filter((f) => f.endsWith('.npy'));
  if (files.length === 0) fail(`${resnetWeights} holds no .npy weight files.`);
  rmSync(resnetDest, { recursive: true, force: true });
  cpSync(resnetWeights, join(resnetDest, 'weights'), { recursive: true });
  for (const f of ['README.md'])
    if (existsSync(join(resnetSrc, f))) cpSync(join(resnetSrc, f), join(resnetDest, f));
  const mb = files.reduce((n, f) => n + statSync(join(resnetDest, 'weights', f)).size, 0) / 2 ** 20;
  process.stdout.write(
    `copy-backbone: ${resnetSrc} -> ${resnetDest} (${basename(resnetWeights)}/: ${files.length} files, ${mb.toFixed(1)} MB)\n`,
  );
}
