import { dropTemplateDatabase, prepareTemplateDatabase } from '@fitlamp/testing';

// Migrate once per run into a template of this run's own; every integration test file clones it
// (cheap, isolated). Workers inherit the name through the environment.
export default async function setup(): Promise<() => Promise<void>> {
  const name = `fitlamp_test_template_${process.pid}`;
  process.env.FITLAMP_TEST_TEMPLATE = name;
  await prepareTemplateDatabase(name);
  return () => dropTemplateDatabase(name);
}
