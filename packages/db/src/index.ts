export { createDb, type DbOptions } from './db.ts';
export { migrateToLatest, migrateDown, migrateToNone, migrations } from './migrate.ts';
export * from './schema.ts';
export {
  upsertParticipant,
  participantExists,
  findCurrentTimeZone,
  findZoneHistory,
  recordTimeZone,
  listParticipantStatuses,
  type ParticipantStatusRow,
} from './participants.ts';
export {
  ACTIVE_CONNECTION_STATUSES,
  DUE_NOW,
  findConnection,
  findConnectionsOfParticipant,
  findActiveConnectionByAccount,
  saveConnectedTokens,
  endConnection,
  scheduleStreams,
  unscheduleStreams,
  type ConnectedTokens,
} from './connections.ts';
export { insertOauthState, consumeOauthState, deleteExpiredOauthStates, type NewOauthState } from './oauth-states.ts';
export {
  findLedgerDays,
  findScheduledStreams,
  listDeliveryBatches,
  requeueParkedBatch,
  type LedgerDay,
  type RequeueOutcome,
} from './ledger.ts';
