// `@fitlamp/db` owns every table: one module per table or aggregate, each a set of plain
// `(db, …)` functions, each saying at its top what its statuses and columns mean.
export { createDb, pingDatabase, type DbOptions } from './db.ts';
export { migrateToLatest, migrateDown, migrateToNone, migrations } from './migrate.ts';
export * from './schema.ts';
export { upsertParticipant, participantExists, listParticipantStatuses, listParticipantIds, listStudyIds, type ParticipantStatusRow } from './participants.ts';
export { findCurrentTimeZone, findCurrentTimeZones, findZoneHistory, recordTimeZone } from './time-zones.ts';
export {
  ACTIVE_CONNECTION_STATUSES,
  findConnection,
  findConnectionsOfParticipant,
  findSyncableConnection,
  findActiveConnectionByAccount,
  findParticipantsByAccounts,
  findSupersededConnections,
  findParticipantsNeedingReconsent,
  saveConnectedTokens,
  lockConnectionForRefresh,
  saveRefreshedTokens,
  markReconnectNeeded,
  markNeedsReconsent,
  endConnection,
  saveRateBudget,
  setIntradayRefused,
  recordDeviceSync,
  DEVICE_SYNC_HISTORY,
  recordProfileCheck,
  markSynced,
  type ConnectedTokens,
  type RefreshedTokens,
  type LostConnectionGuard,
  connectionTokenPlace,
  listConnectionsWithTokens,
  rewrapConnectionTokens,
  type TokenColumn,
} from './connections.ts';
export { insertOauthState, consumeOauthState, deleteExpiredOauthStates, codeVerifierPlace, type NewOauthState } from './oauth-states.ts';
export {
  DUE_NOW,
  scheduleStreams,
  unscheduleStreams,
  findScheduledStreams,
  findDueParticipants,
  scheduleNextSync,
  postponeSync,
} from './sync-cursors.ts';
export {
  markDaysNotSynced,
  markDaysFailed,
  invalidateLedgerDays,
  findLedgerSince,
  findLedgerDays,
  countLedgerStatuses,
  findLedgerStatuses,
  type LedgerDayCounts,
  type UnfetchedDays,
  type LedgerFetchState,
  type LedgerDay,
} from './day-ledger.ts';
export {
  toSensorEvent,
  storeFetchedDays,
  findBatchRecords,
  compactDeliveredEvents,
  insertChunk,
  isAdditiveStream,
  correctionKey,
  type CompactionOutcome,
  type Revision,
  type OutboxRecord,
  type FetchedRecord,
  type FetchedDay,
  type FetchedDaysOutcome,
} from './outbox.ts';
export {
  claimBatch,
  markBatchDelivered,
  settleReconciledBatch,
  abandonBatch,
  parkBatch,
  markBatchUnknown,
  findOpenBatches,
  findParticipantsWithLostDeliveries,
  listDeliveryBatches,
  requeueParkedBatch,
  findBatchParticipant,
  type ClaimedBatch,
  type RequeueOutcome,
} from './delivery-batches.ts';
export { acquireWriterLease, renewWriterLease, releaseWriterLease, findWriterLeaseRemainingMs } from './writer-leases.ts';
export { recordWebhookVerified, findWebhookLastVerified } from './provider-webhooks.ts';
export { lockProviderAccount, lockParticipantEvents, withSchedulerLock, withAlertsLock, type LockedRun } from './locks.ts';
export { findDayTotals, dayTotalOf, type DayTotals } from './day-totals.ts';
export { findStorageStats, currentWalLsn, walBytesSince, type StorageStats } from './storage-stats.ts';
export { insertCoordinator, findCoordinator } from './coordinators.ts';
export {
  findParticipantsNotSyncedSince,
  findParticipantsWithBatteryBelow,
  findParticipantsNeedingConsent,
  findParticipantsWithParkedDeliveries,
  findConnectedParticipants,
  reconcileAlerts,
  listOpenAlerts,
  acknowledgeAlert,
  findDueAlertNotifications,
  markAlertNotified,
  postponeAlertNotification,
  type OpenAlert,
  type AcknowledgeOutcome,
  type DueAlertNotification,
} from './alerts.ts';
