import type { TokenCipher } from '@fitlamp/crypto';
import { connectionTokenPlace, type ProviderConnection, type TokenColumn } from '@fitlamp/db';

/** A connection row's token, decrypted where it is stored (the row's participant and column). */
export function storedToken(cipher: TokenCipher, row: ProviderConnection, column: TokenColumn): string {
  const value = row[column];
  if (!value) throw new Error(`the connection of ${row.participant_id} has no ${column}`);
  return cipher.decrypt(value, connectionTokenPlace(row.participant_id, column));
}
