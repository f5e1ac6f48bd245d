/** HTML pages of the simulated www.fitbit.com authorization screens. */

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

const SCOPE_LABELS: Record<string, string> = {
  activity: 'activity and exercise',
  cardio_fitness: 'cardio fitness (VO2 max)',
  electrocardiogram: 'ECG',
  heartrate: 'heart rate',
  irregular_rhythm_notifications: 'irregular rhythm notifications',
  location: 'location and GPS',
  nutrition: 'food and water logs',
  oxygen_saturation: 'oxygen saturation (SpO2)',
  profile: 'profile',
  respiratory_rate: 'breathing rate',
  settings: 'devices and settings',
  sleep: 'sleep',
  social: 'friends',
  temperature: 'temperature',
  weight: 'weight',
};

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}label{display:block;margin:.3rem 0}button{margin:.5rem .5rem 0 0;padding:.5rem 1.2rem}.error{color:#a00}</style>
</head><body>${body}</body></html>`;
}

/** The consent screen: app name, requested scopes (all ticked), user chooser, Allow and Deny. */
export function consentPage(input: {
  appName: string;
  transactionId: string;
  scopes: string[];
  users: Array<{ id: string; name: string; connected: boolean }>;
  selectedUserId: string | undefined;
}): string {
  const options = input.users
    .map(
      (u) =>
        `<option value="${escapeHtml(u.id)}"${u.id === input.selectedUserId ? ' selected' : ''}>${escapeHtml(u.name)} (${escapeHtml(u.id)})${u.connected ? ' — already connected' : ''}</option>`,
    )
    .join('');
  const boxes = input.scopes
    .map(
      (s) =>
        `<label><input type="checkbox" name="scope" value="${escapeHtml(s)}" checked> ${escapeHtml(SCOPE_LABELS[s] ?? s)} <code>${escapeHtml(s)}</code></label>`,
    )
    .join('\n');
  return page(
    `${input.appName} — Fitbit authorization`,
    `<h1>Fitbit (simulated)</h1>
<form method="post" action="/oauth2/authorize">
<p><strong id="app-name">${escapeHtml(input.appName)}</strong> would like the ability to access the following data in your Fitbit account.</p>
<input type="hidden" name="transaction_id" value="${escapeHtml(input.transactionId)}">
<label for="user">Signed in as</label>
<select name="user" id="user">${options}</select>
<fieldset><legend>Allow ${escapeHtml(input.appName)} to access:</legend>
${boxes}
</fieldset>
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form>`,
  );
}

/** The error screen shown instead of redirecting (e.g. a redirect_uri that does not match). */
export function errorPage(message: string): string {
  return page('Fitbit authorization error', `<h1>Something went wrong</h1><p class="error" id="error">${escapeHtml(message)}</p>`);
}
