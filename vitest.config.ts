import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // tests/faults: crash (SIGKILL) recovery and the bad-input corpus (issue 13).
    include: ['tests/unit/**/*.test.ts', 'tests/faults/**/*.test.ts'],
    environment: 'node',
    // TF.js kernels and real images make some tests take seconds on a 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
