import { describe, expect, it } from 'vitest';
import { createLogger, redactDeep } from './logger.ts';

function capture() {
  const lines: string[] = [];
  const logger = createLogger({ name: 't', destination: { write: (l: string) => void lines.push(l) } });
  return { logger, text: () => lines.join('\n') };
}

describe('logger', () => {
  it('redacts tokens, codes, secrets and authorization headers at any depth, and query strings', () => {
    const { logger, text } = capture();
    logger.info(
      {
        access_token: 'AT-secret',
        refreshToken: 'RT-secret',
        code: 'CODE-secret',
        nested: { client_secret: 'CS-secret', deeper: { code_verifier: 'V-secret' } },
        a: { b: { c: { d: { e: { f: { accessToken: 'DEEP-secret', list: [{ LAMP_SECRET_KEY: 'LIST-secret' }] } } } } } },
        req: { method: 'GET', url: '/oauth/fitbit/callback?code=Q-secret&state=S-secret', headers: { authorization: 'Bearer H-secret' } },
        redirectUrl: 'https://x.example/cb?code=U-secret',
        participantId: 'U1',
      },
      'event',
    );
    const out = text();
    for (const secret of ['AT-secret', 'RT-secret', 'CODE-secret', 'CS-secret', 'V-secret', 'DEEP-secret', 'LIST-secret', 'Q-secret', 'S-secret', 'H-secret', 'U-secret']) {
      expect(out).not.toContain(secret);
    }
    expect(out).toContain('"participantId":"U1"');
    expect(out).toContain('/oauth/fitbit/callback?[redacted]');
    expect(out).toContain('"accessToken":"[redacted]"');
  });

  it('walks errors, including their own properties and causes', () => {
    const { logger, text } = capture();
    const cause = Object.assign(new Error('token endpoint said no'), { body: { refresh_token: 'CAUSE-secret' } });
    const err = Object.assign(new Error('refresh failed', { cause }), { providerError: 'invalid_grant', details: { token: 'ERR-secret' } });
    logger.error({ err }, 'refresh failed');
    logger.error(err);
    const out = text();
    expect(out).not.toContain('ERR-secret');
    expect(out).not.toContain('CAUSE-secret');
    expect(out).toContain('"providerError":"invalid_grant"');
    expect(out).toContain('refresh failed');
  });

  it('keeps provider error codes readable and survives cycles', () => {
    const { logger, text } = capture();
    const loop: Record<string, unknown> = { providerError: 'rate_limited', errorCode: 'not_found' };
    loop.self = loop;
    logger.warn(loop, 'provider refused');
    const out = text();
    expect(out).toContain('"providerError":"rate_limited"');
    expect(out).toContain('"errorCode":"not_found"');
    expect(out).toContain('"self":"[circular]"');
    expect(redactDeep({ a: [{ sig: 'x' }] })).toEqual({ a: [{ sig: '[redacted]' }] });
  });
});
