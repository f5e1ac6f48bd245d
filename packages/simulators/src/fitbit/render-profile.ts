import { daySteps, viewDevices } from '../world/world.ts';
import { addDays, localDateOf, offsetMs, zoneAt } from '../world/zones.ts';
import type { DataContext } from './context.ts';
import { floating } from './wire-time.ts';

/**
 * `GET /1/user/-/profile.json`: the *current* IANA zone and offset only, no history
 * (fitbit-web-api §4).
 */
export function profile(ctx: DataContext): object {
  const u = ctx.user;
  const zone = zoneAt(u.zoneHistory, ctx.now);
  const [firstName, ...rest] = u.name.split(' ');
  const today = localDateOf(u.zoneHistory, ctx.now);
  let steps = 0;
  let days = 0;
  for (let i = 1; i <= 30; i += 1) {
    const total = daySteps(ctx.state.world, u, addDays(today, -i), ctx.now);
    if (total === null) continue;
    steps += total;
    days += 1;
  }
  const birthYear = new Date(ctx.now).getUTCFullYear() - u.traits.age;
  return {
    user: {
      age: u.traits.age,
      autoStrideEnabled: true,
      avatar: 'https://static0.fitbit.com/images/profile/defaultProfile_100.png',
      avatar150: 'https://static0.fitbit.com/images/profile/defaultProfile_150.png',
      avatar640: 'https://static0.fitbit.com/images/profile/defaultProfile_640.png',
      averageDailySteps: days ? Math.round(steps / days) : 0,
      clockTimeDisplayFormat: '24hour',
      dateOfBirth: `${birthYear}-06-15`,
      displayName: firstName ?? u.name,
      distanceUnit: 'METRIC',
      encodedId: u.id,
      features: { exerciseGoal: true },
      firstName: firstName ?? u.name,
      fullName: u.name,
      gender: u.traits.gender,
      height: u.traits.heightCm,
      heightUnit: 'METRIC',
      lastName: rest.join(' '),
      locale: 'en_US',
      memberSince: u.since,
      offsetFromUTCMillis: offsetMs(zone, ctx.now),
      sleepTracking: 'Normal',
      startDayOfWeek: 'MONDAY',
      strideLengthRunning: Math.round(u.traits.strideCm * 1.35 * 10) / 10,
      strideLengthRunningType: 'auto',
      strideLengthWalking: u.traits.strideCm,
      strideLengthWalkingType: 'auto',
      timezone: zone,
      topBadges: [],
      weight: u.traits.weightKg,
      weightUnit: 'METRIC',
    },
  };
}

/**
 * `GET /1/user/-/devices.json`: `lastSyncTime` is floating local time without offset and
 * `battery` a word (fitbit-web-api §3.3). A device that never synced is not listed yet.
 */
export function devices(ctx: DataContext): object {
  return viewDevices(ctx.state.world, ctx.user, ctx.now).flatMap((d) => {
    if (d.lastSyncAt === null) return [];
    const level = d.batteryLevel;
    return [
      {
        battery: level > 60 ? 'High' : level > 25 ? 'Medium' : level > 5 ? 'Low' : 'Empty',
        batteryLevel: level,
        deviceVersion: d.device.model,
        features: [],
        id: d.device.id,
        lastSyncTime: floating({ kind: 'local', history: ctx.user.zoneHistory }, d.lastSyncAt),
        mac: d.device.mac,
        type: d.device.kind === 'scale' ? 'SCALE' : 'TRACKER',
      },
    ];
  });
}
