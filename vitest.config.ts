import { defineConfig } from 'vitest/config';

// One config for the whole workspace. Integration tests get a fresh Postgres database per file
// (cloned from a migrated template made once in globalSetup) and a unique BullMQ prefix per test.
//
// Two groups, run one after the other:
// - everything but the whole-stack tests, two files at a time;
// - the whole-stack tests (`test/*.e2e.test.ts`: the four services as processes against the
//   simulators, which run inside the test process), one at a time, so that two stacks never
//   compete for the same two cores and each simulator gets the CPU its stack needs.
// Tests sit beside what they test (`src/`); a package's or service's `test/` folder holds its test
// helpers, and any test placed there runs too.
const everywhere = ['{packages,services}/*/{src,test}/**/*.test.ts', 'test/**/*.test.ts'];
const stacks = ['test/**/*.e2e.test.ts'];

export default defineConfig({
  test: {
    globalSetup: ['./test/global-setup.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'unit-int', include: everywhere, exclude: stacks, maxWorkers: 2, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'stack', include: stacks, maxWorkers: 1, sequence: { groupOrder: 1 } } },
    ],
  },
});
