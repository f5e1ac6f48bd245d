import { defineConfig } from 'vitest/config';

// One config for the whole workspace. Integration tests get a fresh Postgres database per file
// (cloned from a migrated template made once in globalSetup) and a unique BullMQ prefix per test.
export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['./test/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
