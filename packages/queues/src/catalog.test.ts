import { describe, expect, it } from 'vitest';
import { encodeIdPart, jobIdFor, queueCatalog, queueKinds } from './catalog.ts';

describe('job ids', () => {
  it('are deterministic per participant and queue, and never contain ":"', () => {
    expect(jobIdFor('sync', 'U123')).toBe('sync-U123');
    expect(jobIdFor('sync', 'U123')).toBe(jobIdFor('sync', 'U123'));
    expect(jobIdFor('deliver', 'U123')).toBe('deliver-U123');
    expect(jobIdFor('sync', 'a:b/c d')).toBe('sync-a~3ab~2fc~20d');
    for (const id of ['x:y', 'é', '-', '~3a']) expect(jobIdFor('sync', id)).not.toContain(':');
  });

  it('never maps two participants to one id', () => {
    // `~` itself is escaped, so an id that looks like an escape cannot collide with one.
    expect(encodeIdPart('a~3ab')).not.toBe(encodeIdPart('a:b'));
    expect(encodeIdPart('a-b')).not.toBe(encodeIdPart('a_b'));
    expect(() => encodeIdPart('')).toThrow();
  });

  it('payload schemas refuse junk and extra secrets are stripped', () => {
    expect(() => queueCatalog.sync.payload.parse({ participantId: '', reason: 'scheduled' })).toThrow();
    expect(() => queueCatalog.sync.payload.parse({ participantId: 'U1', reason: 'because' })).toThrow();
    const parsed = queueCatalog.sync.payload.parse({ participantId: 'U1', reason: 'webhook', accessToken: 'x' });
    expect(parsed).toEqual({ participantId: 'U1', reason: 'webhook' });
    expect(queueKinds).toEqual(['sync', 'deliver']);
  });
});
