import type { Kysely } from 'kysely';
import type { TokenCipher } from '@fitlamp/crypto';
import { connectionTokenPlace, findConnection, listConnectionsWithTokens, rewrapConnectionTokens, type Database, type ProviderConnection } from '@fitlamp/db';

/** What `rotate-keys` did. */
export interface RotationReport {
  /** Connections read. */
  seen: number;
  /** Connections rewritten under the active key. */
  rewritten: number;
}

const PAGE = 200;

function rewrap(cipher: TokenCipher, row: ProviderConnection, column: 'access_token_enc' | 'refresh_token_enc'): string | null {
  const value = row[column];
  if (!value) return null;
  const place = connectionTokenPlace(row.participant_id, column);
  return cipher.isStale(value) ? cipher.encrypt(cipher.decrypt(value, place), place) : value;
}

/**
 * Re-encrypts every connection's tokens under the active key and the current format (v2, bound
 * to its row), page by page; a row refreshed meanwhile is read again. `progress` is told after
 * each page. OAuth states are left alone: they live 10 minutes.
 */
export async function rotateKeys(db: Kysely<Database>, cipher: TokenCipher, progress: (report: RotationReport) => void): Promise<RotationReport> {
  const report: RotationReport = { seen: 0, rewritten: 0 };
  let after: string | undefined;
  for (;;) {
    const page = await listConnectionsWithTokens(db, after, PAGE);
    if (page.length === 0) break;
    for (let row of page) {
      report.seen += 1;
      for (let attempt = 0; attempt < 5; attempt += 1) {
        const stale = [row.access_token_enc, row.refresh_token_enc].some((v) => v && cipher.isStale(v));
        if (!stale) break;
        const done = await rewrapConnectionTokens(db, row, {
          accessTokenEnc: rewrap(cipher, row, 'access_token_enc'),
          refreshTokenEnc: rewrap(cipher, row, 'refresh_token_enc'),
          keyId: cipher.activeKeyId,
        });
        if (done) {
          report.rewritten += 1;
          break;
        }
        // Changed meanwhile: read it again.
        const again = await findConnection(db, row.participant_id, row.provider);
        if (!again || again.id !== row.id) break;
        row = again;
      }
    }
    after = page[page.length - 1]!.id;
    progress(report);
  }
  return report;
}
