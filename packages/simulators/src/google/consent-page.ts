/** HTML of the simulated accounts.google.com consent and error screens. */

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

const LABELS: Record<string, string> = {
  'activity_and_fitness.readonly': 'See your activity and fitness data (steps, exercise, active zone minutes)',
  'health_metrics_and_measurements.readonly': 'See your health metrics (heart rate, HRV, SpO2, breathing rate, temperature)',
  'sleep.readonly': 'See your sleep data',
  'settings.readonly': 'See your settings and paired devices',
  'profile.readonly': 'See your Google Health profile',
  'location.readonly': 'See your exercise routes',
  'nutrition.readonly': 'See your food and water logs',
  'ecg.readonly': 'See your ECG readings',
  'irn.readonly': 'See your irregular rhythm notifications',
};

function label(scope: string): string {
  const short = scope.replace('https://www.googleapis.com/auth/googlehealth.', '');
  return LABELS[short] ?? scope;
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem}label{display:block;margin:.4rem 0}button{margin:.5rem .5rem 0 0;padding:.5rem 1.2rem}.error{color:#a00}code{font-size:.8em;color:#555}</style>
</head><body>${body}</body></html>`;
}

/**
 * The consent screen: app name, a user picker (the world's people, with their legacy Fitbit id),
 * one checkbox per requested Google Health scope (ticked; untick for partial consent), Allow/Deny.
 * Identity scopes (openid, email, profile) are not optional, as on Google's screen.
 */
export function consentPage(input: {
  appName: string;
  transactionId: string;
  scopes: string[];
  users: Array<{ id: string; name: string; connected: boolean }>;
  selectedUserId: string | undefined;
}): string {
  const options = input.users
    .map((u) => `<option value="${escapeHtml(u.id)}"${u.id === input.selectedUserId ? ' selected' : ''}>${escapeHtml(u.name)} (Fitbit ${escapeHtml(u.id)})${u.connected ? ' — already connected' : ''}</option>`)
    .join('');
  const boxes = input.scopes
    .filter((s) => s.includes('googlehealth.') || s.endsWith('/cloud-platform'))
    .map((s) => `<label><input type="checkbox" name="scope" value="${escapeHtml(s)}" checked> ${escapeHtml(label(s))} <code>${escapeHtml(s)}</code></label>`)
    .join('\n');
  return page(
    `Sign in - Google Accounts`,
    `<h1>Google (simulated)</h1>
<form method="post" action="/o/oauth2/v2/auth">
<input type="hidden" name="transaction_id" value="${escapeHtml(input.transactionId)}">
<label for="user">Choose an account</label>
<select name="user" id="user">${options}</select>
<p><strong id="app-name">${escapeHtml(input.appName)}</strong> wants access to your Google Account.</p>
<fieldset><legend>Select what ${escapeHtml(input.appName)} can access</legend>
${boxes}
</fieldset>
<button type="submit" name="decision" value="allow" id="allow">Continue</button>
<button type="submit" name="decision" value="deny" id="deny">Cancel</button>
</form>`,
  );
}

/** Google's "Access blocked" / "Error 400" screen: shown instead of redirecting. */
export function errorPage(error: string, detail: string): string {
  return page('Error', `<h1>Access blocked: this app's request is invalid</h1><p class="error" id="error">Error 400: ${escapeHtml(error)}</p><p>${escapeHtml(detail)}</p>`);
}
