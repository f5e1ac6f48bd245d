export {
  adminDatabaseUrl,
  testRedisUrl,
  databaseUrl,
  prepareTemplateDatabase,
  dropTemplateDatabase,
  createTestDatabase,
  uniquePrefix,
  TEMPLATE_DATABASE,
  type TestDatabase,
} from './databases.ts';
export { serviceTestEnv } from './env.ts';
export { startProcess, buildIfStale, repoRoot, PRODUCTION_NODE_FLAGS, type BuildTarget, type ServiceProcess } from './processes.ts';
export { launchTestBrowser, chromiumPath, CHROMIUM_ARGS, type TestBrowser } from './browser.ts';
export {
  requestEnrollmentLink,
  hiddenFields,
  startConsent,
  answerProviderConsent,
  type ConsentAnswer,
} from './consent.ts';
