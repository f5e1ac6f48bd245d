import type { SleepSession, SleepStage } from '../world/sleep.ts';
import type { WorldUser } from '../world/users.ts';
import { nightTruth, viewNight, type World } from '../world/world.ts';
import { addDays } from '../world/zones.ts';
import { beyondBound, listDates, pageOf, parseDate, parseListQuery, parseRange, type DataContext } from './context.ts';
import { floating, type Frame } from './wire-time.ts';

/** The body of a still-processing sleep request (fitbit-web-api §3.3). */
const PENDING_META = { retryDuration: 3000, state: 'pending' } as const;

const STAGE_LEVELS = ['deep', 'light', 'rem', 'wake'] as const;
const CLASSIC_LEVELS = ['asleep', 'awake', 'restless'] as const;

function minutesOf(ms: number): number {
  return Math.round(ms / 60_000);
}

function stageMinutes(session: SleepSession): Record<string, { count: number; minutes: number }> {
  const levels = session.kind === 'stages' ? STAGE_LEVELS : CLASSIC_LEVELS;
  const out: Record<string, { count: number; minutes: number }> = Object.fromEntries(levels.map((l) => [l, { count: 0, minutes: 0 }]));
  for (const s of session.segments) {
    const entry = out[s.stage];
    if (!entry) continue;
    entry.count += 1;
    entry.minutes += (s.end - s.start) / 60_000;
  }
  // Short wakes count as wake and come out of the sleep stage they interrupt.
  for (const w of session.shortWakes) {
    const wake = out.wake;
    const light = out.light;
    if (!wake || !light) continue;
    wake.count += 1;
    wake.minutes += (w.end - w.start) / 60_000;
    light.minutes -= (w.end - w.start) / 60_000;
  }
  for (const v of Object.values(out)) v.minutes = Math.round(v.minutes);
  return out;
}

function thirtyDayAverages(world: World, user: WorldUser, wakeDate: string): Record<string, number> {
  const sums: Record<string, number> = { deep: 0, light: 0, rem: 0, wake: 0 };
  let nights = 0;
  for (let i = 1; i <= 30; i += 1) {
    const main = nightTruth(world, user, addDays(wakeDate, -i)).main;
    if (!main) continue;
    nights += 1;
    for (const s of main.segments) sums[s.stage] = (sums[s.stage] ?? 0) + (s.end - s.start) / 60_000;
  }
  return Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, nights ? Math.round(v / nights) : 0]));
}

function awakeLevel(stage: SleepStage): boolean {
  return stage === 'wake' || stage === 'awake' || stage === 'restless';
}

/** Renders one sleep session as a v1.2 sleep log (floating local times, `dateOfSleep` = wake date). */
export function renderSleepLog(ctx: DataContext, session: SleepSession): Record<string, unknown> {
  const frame: Frame = { kind: 'local', history: ctx.user.zoneHistory };
  const summary = stageMinutes(session);
  const timeInBed = minutesOf(session.end - session.start);
  const minutesAwake =
    session.kind === 'stages' ? (summary.wake?.minutes ?? 0) : (summary.awake?.minutes ?? 0) + (summary.restless?.minutes ?? 0);
  const first = session.segments[0];
  const minutesToFallAsleep = session.kind === 'classic' && first && awakeLevel(first.stage) ? minutesOf(first.end - first.start) : 0;
  const minutesAsleep = timeInBed - minutesAwake;
  const entry = (s: { start: number; end: number }, level: string): object => ({
    dateTime: floating(frame, s.start),
    level,
    seconds: Math.round((s.end - s.start) / 1000),
  });
  let levels: Record<string, unknown>;
  if (session.kind === 'stages') {
    const avg = thirtyDayAverages(ctx.state.world, ctx.user, session.wakeDate);
    levels = {
      summary: Object.fromEntries(STAGE_LEVELS.map((l) => [l, { ...summary[l], thirtyDayAvgMinutes: avg[l] ?? 0 }])),
      data: session.segments.map((s) => entry(s, s.stage)),
      shortData: session.shortWakes.map((w) => entry(w, 'wake')),
    };
  } else {
    levels = { summary, data: session.segments.map((s) => entry(s, s.stage)) };
  }
  return {
    dateOfSleep: session.wakeDate,
    duration: session.end - session.start,
    // Efficiency is only meaningful for classic logs (fitbit-web-api §3.3); it is still sent.
    efficiency: Math.round((minutesAsleep / Math.max(1, timeInBed)) * 100),
    endTime: floating(frame, session.end),
    infoCode: session.kind === 'classic' && timeInBed < 180 ? 2 : 0,
    isMainSleep: session.isMain,
    levels,
    logId: session.id,
    logType: 'auto_detected',
    minutesAfterWakeup: 0,
    minutesAsleep,
    minutesAwake,
    minutesToFallAsleep,
    startTime: floating(frame, session.start),
    timeInBed,
    type: session.kind,
  };
}

/** Ready sessions (newest first) and whether any is still pending, for the given wake dates. */
function sessionsFor(ctx: DataContext, dates: string[]): { sessions: SleepSession[]; pending: boolean } {
  const sessions: SleepSession[] = [];
  let pending = false;
  for (const d of dates) {
    for (const v of viewNight(ctx.state.world, ctx.user, d, ctx.now).sessions) {
      if (v.state === 'pending') pending = true;
      else sessions.push(v.session);
    }
  }
  sessions.sort((a, b) => b.start - a.start);
  return { sessions, pending };
}

/** `GET /1.2/user/-/sleep/date/[date].json`: logs that ended on `date`, with a summary. */
export function sleepByDate(ctx: DataContext, raw: string): object {
  const { sessions, pending } = sessionsFor(ctx, [parseDate(ctx, raw)]);
  const logs = sessions.map((s) => renderSleepLog(ctx, s));
  const stages = { deep: 0, light: 0, rem: 0, wake: 0 };
  for (const s of sessions.filter((x) => x.kind === 'stages')) {
    const m = stageMinutes(s);
    for (const l of STAGE_LEVELS) stages[l] += m[l]?.minutes ?? 0;
  }
  return {
    ...(pending ? { meta: PENDING_META } : {}),
    sleep: logs,
    summary: {
      ...(sessions.some((s) => s.kind === 'stages') ? { stages } : {}),
      totalMinutesAsleep: logs.reduce((s, l) => s + (l.minutesAsleep as number), 0),
      totalSleepRecords: logs.length,
      totalTimeInBed: logs.reduce((s, l) => s + (l.timeInBed as number), 0),
    },
  };
}

/** `GET /1.2/user/-/sleep/date/[start]/[end].json` (≤ 100 days, by `dateOfSleep`). */
export function sleepByRange(ctx: DataContext, first: string, second: string): object {
  const { sessions, pending } = sessionsFor(ctx, parseRange(ctx, first, second, 100));
  return { ...(pending ? { meta: PENDING_META } : {}), sleep: sessions.map((s) => renderSleepLog(ctx, s)) };
}

/** `GET /1.2/user/-/sleep/list.json` with afterDate/beforeDate, sort, limit and `pagination.next`. */
export function sleepList(ctx: DataContext): object {
  const q = parseListQuery(ctx);
  const frame: Frame = { kind: 'local', history: ctx.user.zoneHistory };
  const { sessions } = sessionsFor(ctx, listDates(ctx, q));
  const selected = sessions.filter((s) => beyondBound(q, floating(frame, s.start)));
  if (q.sort === 'asc') selected.reverse();
  const page = pageOf(ctx, '/1.2/user/-/sleep/list.json', q, selected);
  return { pagination: page.pagination, sleep: page.items.map((s) => renderSleepLog(ctx, s)) };
}
