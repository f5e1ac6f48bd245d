import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FULL_PLAN, renderReliability, runChaos } from '@fitlamp/harness';

// `pnpm chaos`: the full chaos run (packages/harness/src/chaos.ts), then docs/reliability.md.
// CHAOS_STEADY_MINUTES and CHAOS_PARTICIPANTS shorten it (the report says so).
const steadyMinutes = Number(process.env.CHAOS_STEADY_MINUTES ?? FULL_PLAN.steadyMs / 60_000);
const participants = Number(process.env.CHAOS_PARTICIPANTS ?? FULL_PLAN.participants);
if (!(steadyMinutes > 0) || !(participants > 0)) throw new Error('CHAOS_STEADY_MINUTES and CHAOS_PARTICIPANTS must be positive numbers');
const logDir = join('.chaos', new Date().toISOString().replace(/[:.]/g, '-'));
mkdirSync(logDir, { recursive: true });
// The simulated clock starts 11 minutes before a top of the hour, which the bare 429 needs.
const report = await runChaos({
  ...FULL_PLAN,
  participants,
  steadyMs: steadyMinutes * 60_000,
  simStartAt: '2026-11-04T12:49:00Z',
  logDir,
  log: (line) => console.log(line),
});
const shortened =
  steadyMinutes < FULL_PLAN.steadyMs / 60_000 || participants < FULL_PLAN.participants
    ? `**Shortened run**: ${participants} participants, ${steadyMinutes} min of steady state (the full plan: ${FULL_PLAN.participants}, ${FULL_PLAN.steadyMs / 60_000} min).`
    : 'Full plan.';
const markdown = renderReliability(report, shortened);
writeFileSync('docs/reliability.md', markdown);
writeFileSync(join(logDir, 'report.json'), JSON.stringify(report, null, 2));
console.log(markdown);
console.log(`service logs and report.json in ${logDir}`);
const ok = report.events.lost === 0 && report.events.duplicated === 0 && report.events.misplaced === 0 && report.events.repeatsInMindLamp === 0 && report.refreshTokenReuse === 0;
process.exitCode = ok ? 0 : 1;
