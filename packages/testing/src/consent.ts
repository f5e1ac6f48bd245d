/**
 * The participant's side of enrollment without a browser: open the link, submit the consent
 * page, answer the provider's consent screen, follow the redirect back. Used by integration
 * tests, the end-to-end tests, the demo and the benchmarks; the browser tests click instead.
 */

/** `POST /admin/enrollments`; answers the link. */
export async function requestEnrollmentLink(
  gatewayUrl: string,
  adminToken: string,
  participantId: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const res = await fetch(`${gatewayUrl}/admin/enrollments`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ participantId, provider: 'fitbit', ...extra }),
  });
  if (res.status !== 201) throw new Error(`enrollment failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { url: string }).url;
}

function unescapeHtml(value: string): string {
  return value.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** The hidden inputs of a page's form, unescaped. */
export function hiddenFields(page: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const m of page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) fields[m[1]!] = unescapeHtml(m[2]!);
  return fields;
}

/** A consent started as a browser would: where the provider's consent screen is, and the browser's consent cookie. */
export interface ConsentStart {
  authorizeUrl: string;
  /** The `Cookie` header the browser sends back with the callback (`name=value`). */
  cookie: string;
}

/**
 * Opens a link's consent page and submits it, as a browser would; answers the provider URL it
 * redirects to and the consent cookie it set (the callback must carry it: {@link finishConsent}).
 */
export async function startConsent(link: string): Promise<ConsentStart> {
  const page = await fetch(link);
  if (page.status !== 200) throw new Error(`consent page answered ${page.status}`);
  const url = new URL(link);
  const res = await fetch(`${url.origin}${url.pathname}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(hiddenFields(await page.text())).toString(),
    redirect: 'manual',
  });
  if (res.status !== 303) throw new Error(`consent start answered ${res.status}: ${await res.text()}`);
  const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]!).find((c) => c.includes('fitlamp-consent-'));
  if (!cookie) throw new Error('consent start set no consent cookie');
  return { authorizeUrl: res.headers.get('location')!, cookie };
}

/** Follows the provider's redirect back to the gateway's callback from the browser that started the consent. */
export function finishConsent(start: ConsentStart, callbackUrl: string): Promise<Response> {
  return fetch(callbackUrl, { headers: { cookie: start.cookie } });
}

export interface ConsentAnswer {
  decision: 'allow' | 'deny';
  /** The simulated account that logs in; the page's preselected one if absent. */
  user?: string;
  /** Scopes left ticked; all offered if absent. */
  scopes?: string[];
}

/**
 * Answers a simulated provider consent screen (the Fitbit simulator's form: a transaction id, a
 * user picker, scope checkboxes); answers the callback URL the provider redirects to.
 */
export async function answerProviderConsent(authorizeUrl: string, answer: ConsentAnswer): Promise<string> {
  const page = await fetch(authorizeUrl, { redirect: 'manual' });
  // A simulator told to consent automatically redirects straight away.
  if (page.status === 302 || page.status === 303) return page.headers.get('location')!;
  const text = await page.text();
  if (page.status !== 200) throw new Error(`consent page answered ${page.status}: ${text}`);
  const tx = /name="transaction_id" value="([^"]+)"/.exec(text)?.[1];
  const selected = /<option value="([^"]+)" selected>/.exec(text)?.[1];
  const offered = [...text.matchAll(/name="scope" value="([^"]+)"/g)].map((m) => m[1]!);
  const form = new URLSearchParams({ transaction_id: tx ?? '', decision: answer.decision, user: answer.user ?? selected ?? '' });
  for (const scope of answer.scopes ?? offered) form.append('scope', scope);
  const res = await fetch(new URL(new URL(authorizeUrl).pathname, authorizeUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
    redirect: 'manual',
  });
  if (res.status !== 302) throw new Error(`consent answered ${res.status}: ${await res.text()}`);
  return res.headers.get('location')!;
}

/** The whole consent as one browser: open the link, submit it, answer the provider, follow the redirect back. */
export async function completeConsent(link: string, answer: ConsentAnswer): Promise<Response> {
  const start = await startConsent(link);
  return finishConsent(start, await answerProviderConsent(start.authorizeUrl, answer));
}
