import { describe, expect, it } from 'vitest';
import { backendTag } from '../../../src-main/engine/backend';
import { configTag, FeatureCache, sha256, type CacheConfig } from '../../../src-main/engine/features/cache';

const config: CacheConfig = {
  backboneId: 'mobilenet_v1_0.75',
  weights: '0123456789abcdef',
  featureLayer: 'conv_pw_13_relu',
  pooledLayer: 'conv_pw_11_relu',
  pooledContent: 'stats+luma64',
  inputSize: 224,
  levels: 2,
  backend: 'wasm',
};

describe('feature cache key', () => {
  it('differs per backend, per native device and per fine-tuned backbone', () => {
    const tags = [
      configTag(config),
      configTag({ ...config, backend: backendTag({ name: 'cpu', gpu: false }) }),
      configTag({ ...config, backend: backendTag({ name: 'tensorflow', gpu: false }) }),
      configTag({ ...config, backend: backendTag({ name: 'tensorflow', gpu: true }) }),
      configTag({ ...config, fineTuned: 'a'.repeat(64) }),
      configTag({ ...config, fineTuned: 'b'.repeat(64) }),
    ];
    expect(new Set(tags).size).toBe(tags.length);
    const files = ['wasm', 'cpu'].map((backend) =>
      new FeatureCache('/tmp/c', { ...config, backend }).fileFor('h'),
    );
    expect(files[0]).not.toBe(files[1]);
  });

  it("keeps wasm's tag from before the backend was in the key (the shared caches stay valid)", () => {
    const { backend: _wasm, ...before } = config;
    expect(configTag(config)).toBe(sha256(JSON.stringify({ format: 'swan-features-2', ...before })));
  });
});
