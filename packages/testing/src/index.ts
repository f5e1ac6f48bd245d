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
export { serviceTestEnv, googleSimulatorEnv } from './env.ts';
export { startProcess, buildIfStale, repoRoot, PRODUCTION_NODE_FLAGS, type BuildTarget, type ServiceProcess } from './processes.ts';
export { launchTestBrowser, watchPage, chromiumPath, CHROMIUM_ARGS, type TestBrowser } from './browser.ts';
export {
  requestEnrollmentLink,
  hiddenFields,
  startConsent,
  answerProviderConsent,
  finishConsent,
  completeConsent,
  type ConsentAnswer,
  type ConsentStart,
} from './consent.ts';
export {
  seedParticipant,
  seedLedger,
  seedLedgerRows,
  seedBatch,
  seedWear,
  seedDayTotals,
  seedDayTotalRows,
  type SeedDayTotals,
  recordsOf,
  seedChunk,
  outboxEvents,
  type SeedEvent,
  batchStatus,
  SEEDED_CONNECTED_AT,
  type SeedParticipantOptions,
  type SeedDay,
} from './seed.ts';
export { connectSimulatedParticipant } from './connect.ts';
export { minuteValues, type StoredLampEvents } from './lamp-events.ts';
export { waitFor } from './wait.ts';
export { storedToken } from './tokens.ts';
