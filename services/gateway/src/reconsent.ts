import {
  ACTIVE_CONNECTION_STATUSES,
  endConnection,
  findParticipantsNeedingReconsent,
  findSupersededConnections,
  type ParticipantStatusRow,
  type ProviderConnection,
} from '@fitlamp/db';
import { ProviderError, type AccountInfo, type Provider, type ProviderName } from '@fitlamp/provider';
import type { GatewayDeps } from './app.ts';
import { EnrollmentError, issueEnrollment, type IssueEnrollmentDeps } from './enrollment.ts';
import { revocableToken } from './stored-tokens.ts';

/**
 * Moving participants from the legacy Fitbit Web API (410 Gone since 2026-11-02) to the Google
 * Health API (google-health-api §6): links for everyone waiting, the old connection matched and
 * retired when the new one is made, and who is where for the coordinator.
 */

/** Which provider supersedes which: a connection to the key retires one to the value. */
const SUPERSEDES: Partial<Record<ProviderName, ProviderName>> = { 'google-health': 'fitbit' };

/** The status reason of a legacy connection retired by a migration (the admin list keys on it). */
export const MIGRATED_REASON_PREFIX = 'migrated to Google Health';

/** Where a participant stands in the move from the legacy API. */
export type MigrationState = 'legacy_only' | 'waiting' | 'migrated';

/**
 * After a successful connect: when the new provider supersedes another (Google Health → legacy
 * Fitbit), finds the old connection (the same participant's, or the one whose Fitbit user id is
 * the identity's `legacyUserId`), revokes its tokens at the legacy provider and deletes them, so
 * the fetcher syncs only the new connection from here on. Data continues without a gap (days the
 * legacy API never delivered are still due in the ledger) and without a day counted twice: both
 * providers give the same datum the same record key, and a re-fetched delivered record is not
 * sent again (docs/mapping.md). Never throws: a failure is logged and the legacy row stays.
 */
export async function retireSupersededConnections(
  deps: Pick<GatewayDeps, 'db' | 'providers' | 'cipher' | 'logger'>,
  input: { provider: Provider; participantId: string; account: AccountInfo | undefined },
): Promise<void> {
  const legacy = SUPERSEDES[input.provider.name];
  if (!legacy) return;
  const legacyUserId = input.account?.legacyUserId;
  try {
    const candidates = await findSupersededConnections(deps.db, legacy, { participantId: input.participantId, providerUserId: legacyUserId });
    for (const connection of candidates) {
      const revokedAtProvider = await revokeLegacy(deps, connection);
      const reason = `${MIGRATED_REASON_PREFIX} on ${new Date().toISOString().slice(0, 10)}${
        connection.participant_id === input.participantId ? '' : ` (through participant ${input.participantId})`
      }; legacy tokens ${revokedAtProvider ? 'revoked and ' : ''}deleted`;
      await endConnection(deps.db, connection.participant_id, legacy, 'disconnected', reason);
      const matchedBy = connection.participant_id === input.participantId ? 'participant' : 'legacy_user_id';
      deps.logger.info(
        { participantId: input.participantId, legacyParticipantId: connection.participant_id, matchedBy, revokedAtProvider },
        'legacy connection retired after re-consent',
      );
    }
  } catch (error) {
    deps.logger.warn({ participantId: input.participantId, err: error instanceof Error ? error.message : String(error) }, 'could not retire the legacy connection');
  }
}

/**
 * Revokes a legacy grant. A 410 counts as revoked: the legacy OAuth endpoints are switched off
 * with the API (google-health-api §6), so the token can no longer be used by anyone.
 */
async function revokeLegacy(deps: Pick<GatewayDeps, 'providers' | 'cipher' | 'logger'>, connection: ProviderConnection): Promise<boolean> {
  const provider = deps.providers[connection.provider];
  if ((!connection.refresh_token_enc && !connection.access_token_enc) || !provider) return false;
  try {
    await provider.revokeToken(revocableToken(deps.cipher, connection)!);
    return true;
  } catch (error) {
    if (error instanceof ProviderError && error.code === 'gone') return true;
    deps.logger.warn(
      { participantId: connection.participant_id, provider: connection.provider, providerError: error instanceof ProviderError ? error.code : 'unexpected' },
      'could not revoke the legacy grant; deleting the tokens anyway',
    );
    return false;
  }
}

/**
 * The migration state of each participant from their connection rows: `legacy_only` (a working
 * legacy connection, no Google one), `waiting` (the legacy API answered 410 and the participant
 * has not re-consented through Google yet), `migrated` (a Google connection retired the legacy
 * one). Participants who never had a legacy connection have none (`null`).
 */
export function migrationStates(rows: readonly ParticipantStatusRow[]): Map<string, MigrationState | null> {
  const byParticipant = new Map<string, ParticipantStatusRow[]>();
  for (const row of rows) byParticipant.set(row.participantId, [...(byParticipant.get(row.participantId) ?? []), row]);
  const states = new Map<string, MigrationState | null>();
  for (const [participantId, list] of byParticipant) {
    const legacy = list.find((r) => r.provider === 'fitbit');
    const google = list.find((r) => r.provider === 'google-health');
    const googleActive = google?.status !== undefined && google.status !== null && (ACTIVE_CONNECTION_STATUSES as readonly string[]).includes(google.status);
    let state: MigrationState | null = null;
    if (legacy?.statusReason?.startsWith(MIGRATED_REASON_PREFIX)) state = 'migrated';
    else if (legacy?.status === 'needs_reconsent' && !googleActive) state = 'waiting';
    else if (legacy && (legacy.status === 'connected' || legacy.status === 'reconnect_needed') && !google) state = 'legacy_only';
    states.set(participantId, state);
  }
  return states;
}

export interface BulkEnrollmentResult {
  links: Array<{ participantId: string; url: string; expiresAt: string }>;
  failed: Array<{ participantId: string; error: string; message: string }>;
}

/** Issues a link of `provider` for every participant waiting for re-consent; one failure does not stop the rest. */
export async function issueReconsentLinks(
  deps: IssueEnrollmentDeps,
  input: { provider: ProviderName; expiresInHours?: number | undefined },
): Promise<BulkEnrollmentResult> {
  const result: BulkEnrollmentResult = { links: [], failed: [] };
  for (const participantId of await findParticipantsNeedingReconsent(deps.db)) {
    try {
      const issued = await issueEnrollment(deps, { participantId, provider: input.provider, expiresInHours: input.expiresInHours });
      result.links.push({ participantId, url: issued.url, expiresAt: issued.expiresAt });
    } catch (error) {
      if (!(error instanceof EnrollmentError)) throw error;
      result.failed.push({ participantId, error: error.code, message: error.message });
    }
  }
  return result;
}
