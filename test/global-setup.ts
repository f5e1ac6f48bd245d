import { prepareTemplateDatabase } from '@fitlamp/testing';

// Migrate once; every integration test file clones this template (cheap, isolated).
export default async function setup(): Promise<void> {
  await prepareTemplateDatabase();
}
