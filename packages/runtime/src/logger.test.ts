import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.ts';

describe('logger', () => {
  it('redacts tokens, codes, secrets and authorization headers at any depth, and query strings', () => {
    const lines: string[] = [];
    const logger = createLogger({ name: 't', destination: { write: (l: string) => void lines.push(l) } });
    logger.info(
      {
        access_token: 'AT-secret',
        refreshToken: 'RT-secret',
        code: 'CODE-secret',
        nested: { client_secret: 'CS-secret', deeper: { code_verifier: 'V-secret' } },
        req: { method: 'GET', url: '/oauth/fitbit/callback?code=Q-secret&state=S-secret', headers: { authorization: 'Bearer H-secret' } },
        participantId: 'U1',
      },
      'event',
    );
    const text = lines.join('\n');
    for (const secret of ['AT-secret', 'RT-secret', 'CODE-secret', 'CS-secret', 'V-secret', 'Q-secret', 'S-secret', 'H-secret']) {
      expect(text).not.toContain(secret);
    }
    expect(text).toContain('"participantId":"U1"');
    expect(text).toContain('/oauth/fitbit/callback?[redacted]');
  });
});
