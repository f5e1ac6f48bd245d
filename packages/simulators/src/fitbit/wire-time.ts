import { isoString, offsetMs, zoneAt, type ZoneHistory } from '../world/zones.ts';

/**
 * Fitbit renders most times as floating local time (no offset) in the zone the user's device
 * had at that moment (fitbit-web-api §4). A frame is either that local time or UTC (`?timezone=UTC`).
 */
export type Frame = { kind: 'local'; history: ZoneHistory } | { kind: 'utc' };

/** The frame's offset at instant `t`, ms. */
export function frameOffset(frame: Frame, t: number): number {
  return frame.kind === 'utc' ? 0 : offsetMs(zoneAt(frame.history, t), t);
}

/** `YYYY-MM-DDTHH:mm:ss.SSS` in the frame, without offset. */
export function floating(frame: Frame, t: number): string {
  return isoString(t + frameOffset(frame, t)).slice(0, 23);
}

/** `YYYY-MM-DDTHH:mm:ss.SSS±hh:mm`, local time with its offset (activity-log `startTime`, §3.3). */
export function withOffset(history: ZoneHistory, t: number): string {
  const off = offsetMs(zoneAt(history, t), t);
  const sign = off < 0 ? '-' : '+';
  const abs = Math.abs(off) / 60_000;
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = String(abs % 60).padStart(2, '0');
  return `${new Date(t + off).toISOString().slice(0, 23)}${sign}${hh}:${mm}`;
}
