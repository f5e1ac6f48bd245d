import { createHash } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import type { StreamName } from '@fitlamp/provider';

/**
 * The pages a participant sees: small, server-rendered, no scripts, no external assets. One
 * stylesheet, allowed by its hash in the Content-Security-Policy.
 */

const STYLE = `
:root{color-scheme:light dark;--accent:#0b6e4f;--muted:#555}
*{box-sizing:border-box}
body{font:1.05rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:1.25rem;display:flex;justify-content:center}
main{max-width:34rem;width:100%}
h1{font-size:1.45rem;line-height:1.25;margin:.5rem 0 1rem}
ul{padding-left:1.2rem}
li{margin:.2rem 0}
.note{color:var(--muted);font-size:.95rem}
.box{border:1px solid #c8c8c8;border-radius:.6rem;padding:.25rem 1rem;margin:1rem 0}
.warn{border-color:#c77700}
button,.button{display:block;width:100%;font:inherit;font-weight:600;text-align:center;text-decoration:none;padding:.85rem 1rem;margin:1.25rem 0;border:0;border-radius:.6rem;background:var(--accent);color:#fff;cursor:pointer}
code{font-size:.9em}
@media (prefers-color-scheme:dark){:root{--muted:#bbb;--accent:#2fa57d}}
`.trim();

/** The CSP `style-src` source that allows exactly the stylesheet above. */
export const STYLE_HASH = `'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`;

/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(value: string): string {
  // Most values (ids, days, numbers) have nothing to escape: answered as they are, no new string.
  if (!HTML_SPECIAL.test(value)) return value;
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

const HTML_SPECIAL = /[&<>"']/;
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** HTML that is already safe (made by `html` or `escapeHtml`). */
export interface SafeHtml {
  readonly __html: string;
}

/** A tagged template that escapes every interpolated value unless it is {@link SafeHtml} (or an array of them). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? '');
  });
  return { __html: out };
}

function render(value: unknown): string {
  if (value === undefined || value === null || value === false) return '';
  if (Array.isArray(value)) return value.map(render).join('');
  if (typeof value === 'object' && '__html' in value) return (value as SafeHtml).__html;
  return escapeHtml(String(value));
}

/** The one layout: a mobile viewport, the stylesheet, a title and a body. */
export function layout(title: string, body: SafeHtml): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body><main>
${body.__html}
</main></body>
</html>
`;
}

/** Sends a page; never cached (the URL carries a one-time link or an OAuth code). */
export function sendPage(reply: FastifyReply, status: number, title: string, body: SafeHtml): FastifyReply {
  return reply.code(status).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(layout(title, body));
}

/** What each stream means to a participant. */
const STREAM_LABELS: Record<StreamName, string> = {
  steps: 'Steps, minute by minute',
  heart_rate: 'Heart rate',
  resting_heart_rate: 'Resting heart rate',
  sleep: 'Sleep: times and stages',
  spo2: 'Blood oxygen (SpO2)',
  hrv: 'Heart rate variability',
  breathing_rate: 'Breathing rate during sleep',
  skin_temperature: 'Skin temperature changes',
  active_zone_minutes: 'Active zone minutes',
  exercise: 'Exercise sessions',
  device: 'When your device last synced, and its battery level',
};

function streamList(streams: readonly StreamName[]): SafeHtml {
  return html`<ul>${streams.map((s) => html`<li>${STREAM_LABELS[s]}</li>`)}</ul>`;
}

export interface ConsentPageInput {
  studyName: string;
  providerName: string;
  participantId: string;
  streams: readonly StreamName[];
  /** Where the form posts to start the provider's consent. */
  action: string;
  /** Hidden form fields that carry the enrollment to that POST. */
  fields: Record<string, string>;
}

/** The page an enrollment link opens: what will be shared, then on to the provider. */
export function consentPage(input: ConsentPageInput): SafeHtml {
  const fields = Object.entries(input.fields).map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`);
  return html`<h1>Connect your ${input.providerName} to ${input.studyName}</h1>
<p>You are joining as participant <strong id="participant">${input.participantId}</strong>.</p>
<div class="box">
<p>With your permission, the study team will receive this data from your ${input.providerName} account:</p>
${streamList(input.streams)}
</div>
<p>It is copied into the study's mindLAMP account and used only for the study. We also read your
${input.providerName} time zone, so that times are recorded correctly. Nothing else is collected:
not your name, email, friends, location or food logs.</p>
<p>On the next screen, ${input.providerName} asks you to confirm. You can leave out any kind of
data there; the study will then not receive it.</p>
<form method="post" action="${input.action}">
${fields}
<button type="submit" id="continue">Continue to ${input.providerName}</button>
</form>
<p class="note">You can stop sharing at any time: remove this study's access in your
${input.providerName} account settings, or ask the study team.</p>`;
}

/** The success page, saying which data will not be collected if the participant unticked some. */
export function connectedPage(providerName: string, missing: readonly StreamName[], retryUrl: string | undefined): SafeHtml {
  const missingBox =
    missing.length === 0
      ? html``
      : html`<div class="box warn" id="missing">
<p>You chose not to share the following, so the study will <strong>not</strong> collect it:</p>
${streamList(missing)}
${retryUrl ? html`<p>If that was a mistake, <a href="${retryUrl}" id="retry">connect again</a> and leave every box ticked.</p>` : html``}
</div>`;
  return html`<h1 id="result">${providerName} connected — you can close this window.</h1>
<p>Thank you. Your ${providerName} data will now reach the study automatically whenever your
device syncs with the ${providerName} app.</p>
${missingBox}`;
}

/** The participant said no at the provider: nothing was stored, and they can try again. */
export function deniedPage(providerName: string, retryUrl: string | undefined): SafeHtml {
  return html`<h1 id="result">${providerName} was not connected</h1>
<p>You chose not to allow access, so nothing was shared with the study.</p>
${
  retryUrl
    ? html`<p>If you changed your mind, you can try again.</p><a class="button" href="${retryUrl}" id="retry">Try again</a>`
    : html`<p>If you changed your mind, open the link from the study team again.</p>`
}`;
}

/** A problem page: what happened and what to do. */
export function problemPage(heading: string, explanation: string, advice: string, retryUrl?: string): SafeHtml {
  return html`<h1 id="result">${heading}</h1>
<p id="explanation">${explanation}</p>
<p>${advice}</p>
${retryUrl ? html`<a class="button" href="${retryUrl}" id="retry">Try again</a>` : html``}`;
}
