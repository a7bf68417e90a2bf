import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  classifyLoadError,
  initBackend,
  resetBackendForTests,
  type ModuleLoader,
} from '../../../src-main/engine/backend';

describe('initBackend', () => {
  const savedEnv = process.env.SWAN_BACKEND;
  beforeEach(() => {
    delete process.env.SWAN_BACKEND;
    resetBackendForTests();
  });
  afterEach(() => {
    if (savedEnv === undefined) delete process.env.SWAN_BACKEND;
    else process.env.SWAN_BACKEND = savedEnv;
    resetBackendForTests();
  });

  it('falls back gpu -> node -> wasm when the native packages are missing', async () => {
    const tried: string[] = [];
    const loader: ModuleLoader = async (name) => {
      tried.push(name);
      if (name.startsWith('@tensorflow/tfjs-node')) throw new Error(`Cannot find module '${name}'`);
      return import(name);
    };
    const info = await initBackend({ prefer: 'auto' }, loader);
    expect(tried).toEqual([
      '@tensorflow/tfjs-node-gpu',
      '@tensorflow/tfjs-node',
      '@tensorflow/tfjs-backend-wasm',
    ]);
    expect(info.name).toBe('wasm');
    expect(info.native).toBe(false);
    expect(info.gpu).toBe(false);
    expect(info.description).toMatch(/^wasm/);
    expect(info.description).toContain('tfjs-node-gpu not loadable (Cannot find module');
    expect(tf.getBackend()).toBe('wasm');
  });

  it('ignores a native package that registers into another tfjs copy', async () => {
    // Loads without error but registers nothing in our tf: must not be trusted.
    const loader: ModuleLoader = async (name) => (name.includes('tfjs-node') ? {} : import(name));
    const info = await initBackend({}, loader);
    expect(info.name).toBe('wasm');
    expect(info.description).toContain('another copy');
  });

  it('is idempotent: the second call returns the first result', async () => {
    let calls = 0;
    const loader: ModuleLoader = async (name) => {
      calls++;
      if (name.includes('tfjs-node')) throw new Error('absent');
      return import(name);
    };
    const a = await initBackend({}, loader);
    const b = await initBackend({ prefer: 'cpu' }, loader);
    expect(b).toBe(a);
    expect(calls).toBe(3);
  });

  it('uses the pure-JS cpu backend only when asked (option or SWAN_BACKEND)', async () => {
    const info = await initBackend({ prefer: 'cpu' });
    expect(info).toMatchObject({ name: 'cpu', native: false, gpu: false });
    expect(info.description).toMatch(/^cpu/);
    expect(tf.getBackend()).toBe('cpu');

    resetBackendForTests();
    process.env.SWAN_BACKEND = 'cpu';
    const viaEnv = await initBackend({ prefer: 'auto' }, async () => {
      throw new Error('no module may be loaded for cpu');
    });
    expect(viaEnv.name).toBe('cpu');
  });

  it('rejects when wasm cannot load, and the failure does not stick', async () => {
    const loader: ModuleLoader = async () => {
      throw new Error('absent');
    };
    await expect(initBackend({ prefer: 'wasm' }, loader)).rejects.toThrow(/absent/);
    // a failed attempt does not stick
    const info = await initBackend({ prefer: 'wasm' });
    expect(info.name).toBe('wasm');
  });
});

describe('classifyLoadError: why a native package did not load, in the user terms', () => {
  const pkg = '@tensorflow/tfjs-node-gpu';
  const err = (message: string, code?: string) => Object.assign(new Error(message), code ? { code } : {});
  it('tells a missing package, a missing libtensorflow and a missing CUDA apart', () => {
    expect(classifyLoadError(pkg, err(`Cannot find module '${pkg}'`, 'ERR_MODULE_NOT_FOUND'))).toBe(
      'not installed',
    );
    expect(
      classifyLoadError(
        pkg,
        err(`Cannot find module '/x/node_modules/${pkg}/lib/napi-v8/tfjs_binding.node'`, 'MODULE_NOT_FOUND'),
      ),
    ).toMatch(/^libtensorflow missing/);
    expect(
      classifyLoadError(pkg, err('libtensorflow.so.2: cannot open shared object file', 'ERR_DLOPEN_FAILED')),
    ).toMatch(/^libtensorflow missing/);
    expect(classifyLoadError(pkg, err('libcudnn.so.8: cannot open shared object file'))).toMatch(
      /^CUDA\/cuDNN not found \(libcudnn/,
    );
    expect(classifyLoadError(pkg, err('something else'))).toBe('not loadable (something else)');
  });
});
