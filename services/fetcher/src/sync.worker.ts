import { hostname } from 'node:os';
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { Kysely } from 'kysely';
import { Counter, type Registry } from 'prom-client';
import {
  compactDeliveredEvents,
  findLedgerSince,
  findSyncableConnection,
  findZoneHistory,
  markDaysFailed,
  markDaysNotSynced,
  markNeedsReconsent,
  markReconnectNeeded,
  markSynced,
  postponeSync,
  recordDeviceSync,
  recordProfileCheck,
  recordTimeZone,
  saveRateBudget,
  scheduleNextSync,
  setIntradayRefused,
  type Database,
  type ProviderConnection,
  type ProviderName,
} from '@fitlamp/db';
import type { TokenCipher } from '@fitlamp/crypto';
import {
  addDays,
  localDayAt,
  ProviderError,
  syncWindow,
  type DayResult,
  type NormalizedRecord,
  type Provider,
  type ProviderContext,
  type DeviceState,
  type StreamName,
  type ZoneHistory,
} from '@fitlamp/provider';
import { enqueue, startShardWorkers, syncPayload, type QueueSet, type ShardWorkerOptions, type ShardWorkers, type SyncPayload } from '@fitlamp/queues';
import type { Logger } from '@fitlamp/runtime';
import { createRateBudget, type RateBudget } from './budget.ts';
import { planDays, planRequests, type PlannedRequest } from './plan.ts';
import { learnSyncRhythm, nextPollDelayMs, pollIntervalMs, retryDelayMs } from './poll-interval.ts';
import { storeDayResults } from './store.ts';
import { ConnectionLostError, getAccessToken, type AccessToken } from './tokens.ts';

export interface SyncDeps {
  db: Kysely<Database>;
  cipher: TokenCipher;
  providers: Partial<Record<ProviderName, Provider>>;
  queues: QueueSet;
  logger: Logger;
  /** Streams this deployment syncs (SYNC_STREAMS). */
  streams: readonly StreamName[];
  backfillDays: number;
  refetchDays: number;
  /** Delivered events of days before today minus this many leave Postgres after each sync (EVENT_RETENTION_DAYS). */
  eventRetentionDays: number;
  syncIntervalMs: number;
  /** Poll this many times less often while the provider's webhooks are healthy [4]; 1 turns it off. */
  webhookPollMultiplier?: number;
  /**
   * POLL_MAX_INTERVAL_SECONDS: the longest wait between polls when following a device's sync
   * rhythm (poll-interval.ts). At or below the poll interval (the default here), the rhythm is off.
   */
  pollMaxIntervalMs?: number;
  budgetReserve: number;
  /** Re-read the account's zone at most this often (one extra request). */
  profileCheckMs: number;
  metrics: FetcherMetrics;
  now?: () => number;
}

export interface FetcherMetrics {
  requests: Counter<'provider' | 'endpoint'>;
  records: Counter<'provider' | 'stream' | 'outcome'>;
  syncs: Counter<'provider' | 'outcome'>;
}

export function createFetcherMetrics(registry: Registry): FetcherMetrics {
  return {
    requests: new Counter({
      name: 'fitlamp_provider_requests_total',
      help: 'Requests sent to provider APIs, by endpoint',
      labelNames: ['provider', 'endpoint'],
      registers: [registry],
    }),
    records: new Counter({
      name: 'fitlamp_records_stored_total',
      help: 'Records fetched and stored: inserted (new), changed (revised by the provider), correction (a correction event queued for a revised additive event)',
      labelNames: ['provider', 'stream', 'outcome'],
      registers: [registry],
    }),
    syncs: new Counter({
      name: 'fitlamp_syncs_total',
      help: 'Participant syncs by outcome',
      labelNames: ['provider', 'outcome'],
      registers: [registry],
    }),
  };
}

export interface SyncSummary {
  participantId: string;
  outcome: 'synced' | 'skipped' | 'rate_limited' | 'connection_lost' | 'partial_failure';
  requests: number;
  inserted: number;
  changed: number;
  detail?: string;
}

class BudgetSpent extends Error {
  constructor(readonly resetAt: number) {
    super('rate budget spent');
  }
}

/**
 * The fetcher's processor: one participant per job (the job id is per participant, so one sync
 * at a time). Refreshes tokens, plans within the rate budget from the day ledger, fetches,
 * stores records with the ledger durably, then enqueues delivery. A spent budget delays the job
 * until the provider's reset instead of failing it.
 */
export function createSyncProcessor(deps: SyncDeps) {
  const now = () => deps.now?.() ?? Date.now();

  return async function processSync(job: Job<SyncPayload>, token?: string): Promise<SyncSummary> {
    const payload = syncPayload.parse(job.data);
    const { participantId } = payload;
    const log = deps.logger.child({ participantId, jobId: job.id });
    const connection = await findSyncableConnection(deps.db, participantId);
    if (!connection) return { participantId, outcome: 'skipped', requests: 0, inserted: 0, changed: 0, detail: 'not connected' };
    const provider = deps.providers[connection.provider];
    if (!provider) {
      log.warn({ provider: connection.provider }, 'provider not configured in this deployment; skipping');
      return { participantId, outcome: 'skipped', requests: 0, inserted: 0, changed: 0, detail: 'provider not configured' };
    }

    const summary: SyncSummary = { participantId, outcome: 'synced', requests: 0, inserted: 0, changed: 0 };
    const budget = createRateBudget(
      { remaining: connection.rate_limit_remaining, resetAt: connection.rate_limit_reset_at?.getTime() ?? null },
      deps.budgetReserve,
    );
    let zones: ZoneHistory = await findZoneHistory(deps.db, participantId);
    let access: AccessToken;
    let needDelivery = false;
    const failures: string[] = [];
    /** The device's recent syncs (oldest first): the rhythm the next poll follows. */
    let deviceSyncs: number[] = (connection.device_sync_times ?? []).map((d) => new Date(d).getTime());

    const saveBudget = () => saveRateBudget(deps.db, connection.id, { remaining: budget.remaining, resetAt: budget.resetAt });

    const context = (): ProviderContext => ({
      accessToken: access.accessToken,
      zones,
      scopes: connection.scopes,
      intraday: connection.intraday_access !== false,
      onRate: (rate) => budget.observe(rate),
      now,
      onRequest: (endpoint) => {
        summary.requests++;
        budget.spend(1);
        deps.metrics.requests.inc({ provider: provider.name, endpoint });
      },
    });

    /** One provider call: a 401 refreshes once and retries; 410 and 429 end the sync. */
    const call = async <T>(fn: (ctx: ProviderContext) => Promise<T>): Promise<T> => {
      try {
        return await fn(context());
      } catch (error) {
        if (error instanceof ProviderError && error.code === 'token_expired') {
          access = await getAccessToken({ db: deps.db, cipher: deps.cipher, provider, now }, connection, {
            force: true,
            seenVersion: access.version,
          });
          try {
            return await fn(context());
          } catch (retryError) {
            if (retryError instanceof ProviderError && retryError.code === 'token_expired') {
              const reason = `${provider.displayName} rejected a freshly refreshed token; the participant must reconnect`;
              await markReconnectNeeded(deps.db, connection.id, reason);
              throw new ConnectionLostError('reconnect_needed', reason);
            }
            throw retryError;
          }
        }
        throw error;
      }
    };

    try {
      if (!budget.allows(1, 'fresh', now())) throw new BudgetSpent(budget.resetAt!);
      access = await getAccessToken({ db: deps.db, cipher: deps.cipher, provider, now }, connection);

      const profileCheckedAt = connection.profile_checked_at?.getTime() ?? 0;
      const checkProfile = async () => {
        // Only the zone is needed: the account's id was stored at connect.
        const timeZone = provider.fetchTimeZone ? await call((ctx) => provider.fetchTimeZone!(ctx)) : (await call((ctx) => provider.fetchAccount(ctx))).timeZone;
        if (timeZone && (await recordTimeZone(deps.db, participantId, timeZone, provider.name, new Date(now())))) {
          zones = await findZoneHistory(deps.db, participantId);
        }
        await recordProfileCheck(deps.db, connection.id, new Date(now()));
      };
      const firstCheck = zones.length === 0;
      if (firstCheck) await checkProfile();
      if (zones.length === 0) zones = [{ zone: 'UTC', validFrom: 0 }];

      const devices = await call((ctx) => provider.fetchDevices(ctx));
      // The device that synced last is the one the participant wears: its battery is the one shown.
      const newest = devices.reduce<DeviceState | undefined>((best, d) => (d.lastSyncAt !== null && d.lastSyncAt > (best?.lastSyncAt ?? -1) ? d : best), undefined);
      // The zone converts what the device synced: a poll that finds no new sync has nothing new
      // to convert, so the profile is read only when the device list shows a sync other than the
      // last one recorded, and at most once per PROFILE_CHECK_SECONDS (issue 14 item 5: hourly
      // profile reads were a fifth of a 4-hourly watch's requests). Compared for inequality, not
      // order: lastSyncTime is floating local time, read in the zone known so far.
      const newSync = newest?.lastSyncAt != null && newest.lastSyncAt !== deviceSyncs.at(-1);
      if (!firstCheck && newSync && now() - profileCheckedAt > deps.profileCheckMs) await checkProfile();
      const lastDeviceSync = newest?.lastSyncAt ?? null;
      if (lastDeviceSync !== null) {
        deviceSyncs = await recordDeviceSync(deps.db, connection.id, new Date(lastDeviceSync), newest?.batteryLevel ?? null);
      }
      if (deps.streams.includes('device') && lastDeviceSync !== null) {
        const outcome = await storeRecords(deps, participantId, provider.name, 'device', provider.normalizeDevices(devices, zones), lastDeviceSync, zones);
        summary.inserted += outcome.inserted;
        needDelivery ||= outcome.inserted > 0;
      }

      const missingScope = new Set(provider.streamsMissingScope(connection.scopes, deps.streams));
      const streams = deps.streams.filter((s) => s !== 'device' && provider.streams.includes(s) && !missingScope.has(s));
      const ledger = await findLedgerSince(deps.db, participantId, syncWindow(zones, now(), deps.backfillDays).first);
      const plan = planDays({
        now: now(),
        zones,
        lastDeviceSync,
        backfillDays: deps.backfillDays,
        refetchDays: deps.refetchDays,
        streams,
        ledger,
        changedDays: payload.days,
        // Unknown names (another provider's data types) select no stream.
        ...(payload.streams ? { changedStreams: payload.streams as StreamName[] } : {}),
      });
      await markDaysNotSynced(deps.db, {
        participantId,
        provider: provider.name,
        days: plan.notSynced,
        reason:
          lastDeviceSync === null
            ? 'the device has never synced'
            : `the device has not synced this day yet (last sync ${new Date(lastDeviceSync).toISOString()})`,
      });

      const queue: PlannedRequest[] = planRequests(provider, plan.due, connection.intraday_access !== false);
      while (queue.length > 0) {
        const request = queue.shift()!;
        if (!budget.allows(request.cost, request.tier, now())) {
          const waiting = [request, ...queue].flatMap((r) => r.days.map((day) => ({ stream: r.stream, day })));
          await markDaysNotSynced(deps.db, {
            participantId,
            provider: provider.name,
            days: waiting,
            reason: `rate limited: waiting for the ${provider.displayName} budget to reset at ${new Date(budget.resetAt!).toISOString()}`,
          });
          throw new BudgetSpent(budget.resetAt!);
        }
        let results: DayResult[];
        try {
          results = await call((ctx) => provider.fetch(request, ctx));
        } catch (error) {
          if (!(error instanceof ProviderError)) throw error;
          if (error.code === 'intraday_forbidden') {
            // Remember it: this app has no intraday access for this participant; use daily series.
            connection.intraday_access = false;
            await setIntradayRefused(deps.db, connection.id);
            log.info({ stream: request.stream }, 'intraday detail refused (403); falling back to daily resolution');
            // The stream's other minute-detail requests still queued would fail the same way.
            const refused = [request, ...queue.filter((r) => r.stream === request.stream && r.intraday)];
            for (const r of refused.slice(1)) queue.splice(queue.indexOf(r), 1);
            // Days that already hold minute records keep them: a daily total on top would count
            // the same steps twice in mindLAMP, where nothing can be deleted.
            const withMinutes = new Set(
              [...(ledger.get(request.stream) ?? new Map())]
                .filter(([, entry]) => entry.status === 'settled' || entry.status === 'partial')
                .map(([day]) => day),
            );
            for (const r of refused) {
              const daily = r.days.filter((day) => !withMinutes.has(day));
              if (daily.length === 0) continue;
              for (const d of provider.planRequests(r.stream, daily, { intraday: false })) queue.unshift({ ...d, tier: r.tier });
            }
            continue;
          }
          if (error.code === 'scope_missing') {
            await markDaysFailed(deps.db, {
              participantId,
              provider: provider.name,
              days: request.days.map((day) => ({ stream: request.stream, day })),
              reason: `the participant did not grant access to ${request.stream}`,
            });
            continue;
          }
          if (error.code === 'unavailable' || error.code === 'bad_response' || error.code === 'rejected') {
            failures.push(`${request.stream}: ${error.message}`);
            await markDaysFailed(deps.db, {
              participantId,
              provider: provider.name,
              days: request.days.map((day) => ({ stream: request.stream, day })),
              reason: `${provider.displayName} ${error.details.status ?? ''} ${error.code}: will retry`.replace(/\s+/g, ' '),
            });
            continue;
          }
          throw error;
        }
        const outcome = await storeDayResults(deps.db, {
          participantId,
          provider: provider.name,
          stream: request.stream,
          results,
          lastDeviceSync: lastDeviceSync!,
          zones,
        });
        summary.inserted += outcome.inserted;
        summary.changed += outcome.changed;
        if (outcome.revisions.length > 0) {
          // Additive streams send corrections (queued in the outbox with the day); the others only count them (docs/pipeline.md).
          log.info({ stream: request.stream, revised: outcome.revisions.length, corrections: outcome.corrections }, 'the provider revised events mindLAMP already received');
        }
        deps.metrics.records.inc({ provider: provider.name, stream: request.stream, outcome: 'inserted' }, outcome.inserted);
        deps.metrics.records.inc({ provider: provider.name, stream: request.stream, outcome: 'changed' }, outcome.changed);
        deps.metrics.records.inc({ provider: provider.name, stream: request.stream, outcome: 'correction' }, outcome.corrections);
        needDelivery ||= outcome.inserted > 0 || outcome.changed > outcome.changedAfterDelivery || outcome.corrections > 0;
      }

      await finishSync(deps, connection, participantId, failures.length === 0, now(), deviceSyncs);
      await applyRetention();
      if (failures.length > 0) {
        // Not thrown: a job retried with BullMQ's backoff would hold the participant's job id
        // for minutes, and no fresh sync could start meanwhile. The job completes; the failed
        // days stay `failed` in the ledger, and the participant is due again after one poll
        // interval (finishSync), when the planner asks for exactly those days.
        summary.outcome = 'partial_failure';
        summary.detail = failures.join('; ');
        deps.metrics.syncs.inc({ provider: provider.name, outcome: 'partial_failure' });
        log.warn({ requests: summary.requests, inserted: summary.inserted, failures: summary.detail }, 'synced with failures; failed days retry at the next poll');
        return summary;
      }
      deps.metrics.syncs.inc({ provider: provider.name, outcome: 'synced' });
      log.info({ requests: summary.requests, inserted: summary.inserted, changed: summary.changed }, 'synced');
      return summary;
    } catch (error) {
      if (error instanceof BudgetSpent) {
        return await delayUntilReset(error.resetAt, 'rate budget spent');
      }
      if (error instanceof ProviderError && error.code === 'rate_limited') {
        const resetAt = error.details.resetAt ?? now() + 3_600_000;
        budget.observe({ remaining: 0, resetAt });
        return await delayUntilReset(resetAt, 'provider answered 429');
      }
      if (error instanceof ProviderError && error.code === 'gone') {
        const reason = `${provider.displayName} API answered 410 Gone: the participant must consent again through the successor API`;
        await markNeedsReconsent(deps.db, connection.id, reason);
        deps.metrics.syncs.inc({ provider: provider.name, outcome: 'connection_lost' });
        log.warn({ status: 'needs_reconsent' }, reason);
        return { ...summary, outcome: 'connection_lost', detail: reason };
      }
      if (error instanceof ConnectionLostError) {
        deps.metrics.syncs.inc({ provider: provider.name, outcome: 'connection_lost' });
        log.warn({ status: error.status }, error.reason);
        return { ...summary, outcome: 'connection_lost', detail: error.reason };
      }
      deps.metrics.syncs.inc({ provider: provider.name, outcome: 'error' });
      // The retry is the next poll, one interval from now, decided in Postgres. A BullMQ retry
      // with exponential backoff (30 s, 60 s, 120 s, …) would hold the participant's job id past
      // that, so the scheduler could not start their next sync (a provider outage ending would
      // wait for the backoff). If Postgres cannot take the postponement, the cursor stays due
      // and the scheduler re-adds the job at its next tick.
      const message = error instanceof Error ? error.message : String(error);
      const retryAt = new Date(now() + retryDelayMs(deps.syncIntervalMs));
      await postponeSync(deps.db, participantId, { streams: deps.streams, until: retryAt, error: message }).catch(() => {});
      log.warn({ err: message, retryAt: retryAt.toISOString() }, 'sync failed; retrying at the next poll');
      throw new UnrecoverableError(message);
    } finally {
      await saveBudget().catch(() => {});
      if (needDelivery) await enqueue(deps.queues, 'deliver', { participantId, reason: 'fetched' }).catch(() => {});
    }

    /**
     * Retention: the participant's delivered events of days older than the window leave Postgres
     * (their totals stay in day_summaries and the ledger). A failure is logged, not thrown: the
     * sync itself succeeded, and the next one compacts again.
     */
    async function applyRetention(): Promise<void> {
      try {
        const cutoff = addDays(localDayAt(zones, now()), -deps.eventRetentionDays);
        // A day before the sync window is never planned again (plan.ts), whatever its status; one
        // day of margin for a time zone change that moves the window back.
        const finalBefore = addDays(syncWindow(zones, now(), deps.backfillDays).first, -1);
        const compacted = await compactDeliveredEvents(deps.db, participantId, cutoff, finalBefore);
        if (compacted.deletedChunks > 0 || compacted.mergedDays > 0 || compacted.deletedBatches > 0) log.info({ ...compacted, before: cutoff, finalBefore }, 'compacted delivered events');
      } catch (error) {
        log.warn({ err: error instanceof Error ? error.message : String(error) }, 'retention failed; retried after the next sync');
      }
    }

    /** Not a failure: the job waits (delayed, not failed) until the budget refills. */
    async function delayUntilReset(resetAt: number, why: string): Promise<never> {
      deps.metrics.syncs.inc({ provider: provider!.name, outcome: 'rate_limited' });
      // BullMQ schedules in this machine's time: wait as long as the provider's clock says,
      // plus jitter so that participants limited in the same hour do not all return at once.
      const wait = Math.max(0, resetAt - now());
      const until = Date.now() + wait + Math.floor(Math.random() * Math.min(30_000, wait / 10 + 1_000));
      log.info({ until: new Date(until).toISOString(), requests: summary.requests }, `${why}; delayed until reset`);
      await job.moveToDelayed(until, token);
      throw new DelayedError();
    }
  };
}

async function storeRecords(
  deps: SyncDeps,
  participantId: string,
  provider: ProviderName,
  stream: StreamName,
  records: NormalizedRecord[],
  lastDeviceSync: number,
  zones: ZoneHistory,
) {
  const byDay = new Map<string, NormalizedRecord[]>();
  for (const r of records) {
    const list = byDay.get(r.day) ?? [];
    list.push(r);
    byDay.set(r.day, list);
  }
  return storeDayResults(deps.db, {
    participantId,
    provider,
    stream,
    // Device events accumulate: a day's earlier observations are not "vanished" records.
    results: [...byDay].map(([day, recs]) => ({ day, records: recs })),
    lastDeviceSync,
    zones,
    keepVanished: true,
  });
}

/** Records the sync's end: connection freshness and each stream's next due time, with jitter. */
async function finishSync(
  deps: SyncDeps,
  connection: ProviderConnection,
  participantId: string,
  success: boolean,
  at: number,
  deviceSyncs: readonly number[],
) {
  const interval = success
    ? await pollIntervalMs(deps.db, connection.provider, { baseMs: deps.syncIntervalMs, multiplier: deps.webhookPollMultiplier ?? 4 })
    : deps.syncIntervalMs;
  // After a failure, the usual interval: the failed days are due again soon.
  const rhythm = success ? learnSyncRhythm(deviceSyncs) : null;
  const wait = nextPollDelayMs({ now: at, baseMs: interval, maxMs: deps.pollMaxIntervalMs ?? interval, rhythm });
  // Jitter spreads the usual polls; a wait aimed just after an expected sync is only ever pushed later.
  // After a failure the retry is due a little before one interval (retryDelayMs), so that the
  // failed days are fetched again within one poll interval of the outage's end (issue 16 item 4).
  const jittered = !success
    ? retryDelayMs(interval)
    : wait === interval
      ? interval * (0.9 + Math.random() * 0.2)
      : wait + Math.random() * 0.1 * interval;
  if (success) await markSynced(deps.db, connection.id, new Date(at));
  await scheduleNextSync(deps.db, participantId, { streams: deps.streams, at: new Date(at), nextDueAt: new Date(at + jittered), success });
}

/** Starts the BullMQ workers for the consumed sync shards. Close them first at shutdown. */
export function startSyncWorker(deps: SyncDeps, options: ShardWorkerOptions): ShardWorkers<'sync', SyncSummary> {
  return startShardWorkers('sync', createSyncProcessor(deps), { ...options, name: `fetcher-${hostname()}-${process.pid}` }, (worker) => {
    worker.on('failed', (job, error) => {
      deps.logger.warn({ jobId: job?.id, attempts: job?.attemptsMade, err: error.message }, 'sync job failed');
    });
    worker.on('error', (error) => deps.logger.error({ err: error.message }, 'sync worker error'));
  });
}
