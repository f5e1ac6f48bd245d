// `pnpm exec tsx scripts/screenshots.ts`: the README's screenshots of the coordinator cockpit
// (docs/images/). Starts the gateway on a fresh test database, seeds a study the way the fetcher
// and lamp-writer would leave it (some participants not wearing or not syncing, one with a low
// battery, one needing to reconnect), and photographs the pages in headless Chromium.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { addDays } from '@fitlamp/provider';
import type { SeedDay } from '@fitlamp/testing';

// The test helpers clone this run's own migrated template (read when they load, so set it first).
const template = `fitlamp_screenshots_template_${process.pid}`;
process.env.FITLAMP_TEST_TEMPLATE = template;
const { dropTemplateDatabase, launchTestBrowser, prepareTemplateDatabase, repoRoot, seedLedger, seedParticipant, seedWear } = await import('@fitlamp/testing');
const { startTestGateway } = await import('../services/gateway/test/gateway.ts');

const out = join(repoRoot, 'docs', 'images');
mkdirSync(out, { recursive: true });
await prepareTemplateDatabase(template);
const gw = await startTestGateway();
const browser = await launchTestBrowser({ viewport: { width: 1280, height: 820 } });
try {
  const today = new Date().toISOString().slice(0, 10);
  const streams = ['steps', 'heart_rate', 'sleep', 'spo2', 'hrv'];
  // wear hours per day pattern: compliant, fading, not syncing, low battery, reconnect.
  const people: Array<{ id: string; study: string; wear: (i: number) => number; syncedDaysAgo: number; battery: number; status?: 'reconnect_needed' }> = [
    { id: 'U0000000001', study: 'S0000000001', wear: () => 21, syncedDaysAgo: 0, battery: 78 },
    { id: 'U0000000002', study: 'S0000000001', wear: (i) => (i % 6 === 0 ? 0 : 18), syncedDaysAgo: 0, battery: 55 },
    { id: 'U0000000003', study: 'S0000000001', wear: (i) => (i < 9 ? 0 : 16), syncedDaysAgo: 0, battery: 64 },
    { id: 'U0000000004', study: 'S0000000001', wear: (i) => (i < 5 ? -1 : 20), syncedDaysAgo: 5, battery: 31 },
    { id: 'U0000000005', study: 'S0000000002', wear: () => 22, syncedDaysAgo: 0, battery: 9 },
    { id: 'U0000000006', study: 'S0000000002', wear: (i) => (i < 3 ? -1 : 14), syncedDaysAgo: 3, battery: 40, status: 'reconnect_needed' },
    { id: 'U0000000007', study: 'S0000000002', wear: (i) => 8 + (i % 5) * 3, syncedDaysAgo: 0, battery: 88 },
  ];
  for (const p of people) {
    await seedParticipant(gw.db, p.id, {
      status: p.status ?? 'connected',
      ...(p.status ? { statusReason: 'the refresh token was revoked: send a new enrollment link' } : {}),
      streams: [...streams, 'device'],
      studyId: p.study,
      device: { syncedAt: new Date(Date.now() - p.syncedDaysAgo * 86_400_000 - 3_600_000), battery: p.battery },
    });
    const days: SeedDay[] = [];
    for (let i = 0; i < 28; i++) {
      const day = addDays(today, -i);
      const hours = p.wear(i);
      for (const stream of streams) {
        if (hours < 0) days.push({ stream, day, status: 'not_synced', reason: `the device has not synced this day yet`, fetchedAt: null });
        else if (i === 0) days.push({ stream, day, status: 'partial', reason: 'device last synced an hour ago: more may come' });
        else if (hours === 0) days.push({ stream, day, status: 'empty', reason: 'no data: the device was not worn, or recorded nothing this day' });
        else if (stream === 'spo2' && i === 11 && p.id.endsWith('2')) days.push({ stream, day, status: 'failed', reason: 'Google Health 503: retried at the next poll' });
        else days.push({ stream, day, status: 'settled', fetched: 100, delivered: 100 });
      }
      if (hours > 0) await seedWear(gw.db, p.id, day, Math.round(hours * 60));
    }
    await seedLedger(gw.db, p.id, days);
  }
  await browser.context.setHTTPCredentials({ username: 'admin', password: gw.env.ADMIN_TOKEN, origin: gw.base });
  const page = await browser.newPage();
  await page.goto(`${gw.base}/admin`);
  await page.screenshot({ path: join(out, 'overview.png'), fullPage: true });
  await page.goto(`${gw.base}/admin/participants/U0000000002?day=${addDays(today, -11)}#day-detail`);
  await page.screenshot({ path: join(out, 'participant.png'), fullPage: true });
  const phone = await launchTestBrowser({ viewport: { width: 390, height: 844 } });
  try {
    await phone.context.setHTTPCredentials({ username: 'admin', password: gw.env.ADMIN_TOKEN, origin: gw.base });
    const small = await phone.newPage();
    await small.goto(`${gw.base}/admin`);
    await small.screenshot({ path: join(out, 'overview-phone.png') });
  } finally {
    await phone.close();
  }
  console.log(`screenshots written to ${out}`);
} finally {
  await browser.close();
  await gw.close();
  await dropTemplateDatabase(template);
}
