import type { TokenCipher } from '@fitlamp/crypto';
import { connectionTokenPlace, type ProviderConnection } from '@fitlamp/db';

/**
 * The token to revoke a connection's grant with, decrypted: the refresh token (revoking it ends
 * the whole grant), else the access token; `undefined` when the connection holds none.
 */
export function revocableToken(cipher: TokenCipher, connection: ProviderConnection): string | undefined {
  if (connection.refresh_token_enc) {
    return cipher.decrypt(connection.refresh_token_enc, connectionTokenPlace(connection.participant_id, 'refresh_token_enc'));
  }
  if (connection.access_token_enc) {
    return cipher.decrypt(connection.access_token_enc, connectionTokenPlace(connection.participant_id, 'access_token_enc'));
  }
  return undefined;
}
