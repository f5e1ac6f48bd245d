import { dropTemplateDatabase, prepareTemplateDatabase } from '@fitlamp/testing';

// Migrate once per run into a template of this run's own; every integration test file clones it
// (cheap, isolated). Workers inherit the name through the environment. Vitest calls this once per
// project (vitest.config.ts has two): the first call makes the template and the last teardown
// drops it.
// The count lives in the environment: each project may load this module afresh.
const USERS = 'FITLAMP_TEST_TEMPLATE_USERS';

export default async function setup(): Promise<() => Promise<void>> {
  const name = `fitlamp_test_template_${process.pid}`;
  if (process.env.FITLAMP_TEST_TEMPLATE !== name) {
    process.env.FITLAMP_TEST_TEMPLATE = name;
    await prepareTemplateDatabase(name);
  }
  process.env[USERS] = String(Number(process.env[USERS] ?? 0) + 1);
  return async () => {
    const left = Number(process.env[USERS]) - 1;
    process.env[USERS] = String(left);
    if (left === 0) await dropTemplateDatabase(name);
  };
}
