import { describe, expect, it } from 'vitest';
import { signEnrollment, verifyEnrollment } from './enrollment.ts';
import { consentPage, escapeHtml, html, layout, STYLE_HASH } from './pages.ts';

const SECRET = 'an-enrollment-secret-of-at-least-32-chars';
const claims = { participantId: 'U123', provider: 'fitbit' as const, expiresAt: Date.parse('2026-12-10T12:00:00Z') };
const now = Date.parse('2026-11-26T12:00:00Z');

describe('enrollment links', () => {
  it('verify under the same secret and provider until they expire', () => {
    const token = signEnrollment(SECRET, claims);
    expect(verifyEnrollment(SECRET, token, 'fitbit', now)).toEqual({ ok: true, claims });
    expect(verifyEnrollment(SECRET, token, 'google-health', now)).toEqual({ ok: false, reason: 'invalid' });
    expect(verifyEnrollment(`${SECRET}x`, token, 'fitbit', now)).toEqual({ ok: false, reason: 'invalid' });
    expect(verifyEnrollment(SECRET, token, 'fitbit', claims.expiresAt)).toEqual({ ok: false, reason: 'expired', expiresAt: claims.expiresAt });
  });

  it('carry when they were issued, signed like the rest', () => {
    const issuedAt = Date.parse('2026-11-26T11:59:59.123Z');
    const token = signEnrollment(SECRET, { ...claims, issuedAt });
    expect(verifyEnrollment(SECRET, token, 'fitbit', now)).toEqual({ ok: true, claims: { ...claims, issuedAt } });
    const [payload, sig] = token.split('.') as [string, string];
    const body = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    for (const change of [{ i: issuedAt + 1 }, { i: undefined }]) {
      const forged = Buffer.from(JSON.stringify({ ...body, ...change })).toString('base64url');
      expect(verifyEnrollment(SECRET, `${forged}.${sig}`, 'fitbit', now).ok).toBe(false);
    }
    const odd = signEnrollment(SECRET, { ...claims, issuedAt: 1.5 });
    expect(verifyEnrollment(SECRET, odd, 'fitbit', now)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('reject any change to the payload or signature, and junk', () => {
    const token = signEnrollment(SECRET, claims);
    const [payload, sig] = token.split('.') as [string, string];
    const body = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    for (const change of [{ p: 'U124' }, { e: (body.e as number) + 86_400 }, { r: 'google-health' }, { v: 2 }]) {
      const forged = Buffer.from(JSON.stringify({ ...body, ...change })).toString('base64url');
      expect(verifyEnrollment(SECRET, `${forged}.${sig}`, 'fitbit', now).ok).toBe(false);
    }
    for (const junk of ['', '.', token.replace('.', ''), `${payload}.`, `.${sig}`, `${token}x`, 'a'.repeat(2000)]) {
      expect(verifyEnrollment(SECRET, junk, 'fitbit', now)).toEqual({ ok: false, reason: 'invalid' });
    }
    // A validly signed payload that is not an enrollment (e.g. a bad participant id) is refused too.
    const odd = signEnrollment(SECRET, { ...claims, participantId: '<script>' });
    expect(verifyEnrollment(SECRET, odd, 'fitbit', now).ok).toBe(false);
  });
});

describe('pages', () => {
  it('escape everything interpolated, in text and attributes', () => {
    const evil = `"><script>alert(1)</script>'&`;
    expect(escapeHtml(evil)).toBe('&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#39;&amp;');
    const page = layout(evil, consentPage({ studyName: evil, providerName: 'Fitbit', participantId: evil, streams: ['steps'], action: '/connect/fitbit', fields: { t: evil } }));
    expect(page).not.toContain('<script>');
    expect(page).toContain('value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#39;&amp;"');
    expect(html`<b>${html`<i>${'<'}</i>`}</b>`.__html).toBe('<b><i>&lt;</i></b>');
  });

  it('carry exactly the stylesheet the CSP hash allows', async () => {
    const page = layout('x', html``);
    const style = /<style>([\s\S]*?)<\/style>/.exec(page)![1]!;
    const { createHash } = await import('node:crypto');
    expect(`'sha256-${createHash('sha256').update(style).digest('base64')}'`).toBe(STYLE_HASH);
    expect(page).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
  });
});
