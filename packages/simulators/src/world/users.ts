import { createRng, gaussian, hash32, intBetween } from './random.ts';
import { assertZone, isDate, type ZoneHistory, type ZoneSpan } from './zones.ts';

/** A wearable device as the world knows it (no wire format). */
export interface DeviceTruth {
  id: string;
  model: string;
  kind: 'tracker' | 'scale';
  mac: string;
  /** Days from full to empty; the battery recharges at the start of each cycle. */
  batteryDays: number;
  batteryPhaseMs: number;
  /** A battery stuck at this percent (a device never charged), instead of the charge cycle. */
  batteryPercent?: number;
}

/** Physiology and habits that shape a user's generated data. */
export interface UserTraits {
  restingHr: number;
  maxHr: number;
  age: number;
  gender: 'MALE' | 'FEMALE';
  heightCm: number;
  weightKg: number;
  strideCm: number;
  /** Mean local bed and wake times, minutes after midnight (bed may exceed 1440). */
  bedMinute: number;
  wakeMinute: number;
  activity: number;
  notWornRate: number;
  thinRate: number;
  napRate: number;
  runRate: number;
  /** Share of nights with a ~1 h awakening that later syncs split or stitch (fitbit-web-api §3.3). */
  fragileNightRate: number;
}

/** A simulated person with everything the generator needs. */
export interface WorldUser {
  /** Fitbit-style 6-character encoded id (fitbit-web-api §1.3). */
  id: string;
  name: string;
  preset: string;
  zoneHistory: ZoneHistory;
  /** First local date with data (also the account's member-since date). */
  since: string;
  /** Automatic syncs every N minutes (0 = only when told to sync). */
  autoSyncMinutes: number;
  autoSyncPhaseMs: number;
  devices: DeviceTruth[];
  traits: UserTraits;
}

/** What a caller may say about a new user; everything else is derived from the seed. */
export interface UserSpec {
  id?: string;
  name?: string;
  /** One of {@link PRESETS}' names; provides zones and sync habits. */
  preset?: string;
  /** A single zone (shorthand for a one-span history). */
  zone?: string;
  zoneHistory?: Array<{ from: string | number; zone: string }>;
  since?: string;
  autoSyncMinutes?: number;
  /** Share of days the device is not worn at all, and worn only briefly (thin); default a few percent each. */
  notWornRate?: number;
  thinRate?: number;
  /** The device's battery stays at this percent (default: charged every few days). */
  batteryPercent?: number;
}

interface Preset {
  name: string;
  displayName: string;
  zoneHistory: ZoneSpan[];
  autoSyncMinutes: number;
  model: string;
}

/**
 * The built-in users: a DST-crossing New Yorker (2026-03-08, 2026-11-01), a traveller who flies
 * London → Los Angeles on 2026-10-20, a southern-hemisphere user (DST the other way) who syncs
 * rarely, and a half-hour-offset user who syncs only when told to.
 */
export const PRESETS: readonly Preset[] = [
  { name: 'new-york', displayName: 'Nora York', zoneHistory: [{ from: -Infinity, zone: 'America/New_York' }], autoSyncMinutes: 15, model: 'Charge 6' },
  {
    name: 'traveler',
    displayName: 'Theo Traveler',
    zoneHistory: [
      { from: -Infinity, zone: 'Europe/London' },
      { from: Date.parse('2026-10-20T17:00:00Z'), zone: 'America/Los_Angeles' },
    ],
    autoSyncMinutes: 60,
    model: 'Inspire 3',
  },
  { name: 'sydney', displayName: 'Sam Sydney', zoneHistory: [{ from: -Infinity, zone: 'Australia/Sydney' }], autoSyncMinutes: 240, model: 'Versa 4' },
  { name: 'kolkata', displayName: 'Kavya Kolkata', zoneHistory: [{ from: -Infinity, zone: 'Asia/Kolkata' }], autoSyncMinutes: 0, model: 'Pixel Watch 2' },
];

const ID_CHARS = '0123456789ABCDEFGHJKLMNPQRSTUVWXYZ';

/** A deterministic 6-character Fitbit-style id for the n-th user of a seed. */
export function userIdFor(seed: string, n: number): string {
  const rng = createRng(seed, 'user-id', n);
  let id = '';
  for (let i = 0; i < 6; i += 1) id += ID_CHARS[Math.floor(rng() * ID_CHARS.length)];
  return id;
}

/**
 * Builds a user from a spec. `n` is the user's ordinal in the world (for ids and names) and
 * `defaultSince` the first data date when the spec gives none.
 */
export function createUser(seed: string, n: number, spec: UserSpec, defaultSince: string): WorldUser {
  const preset = PRESETS.find((p) => p.name === spec.preset) ?? (spec.preset === undefined ? PRESETS[n % PRESETS.length] : undefined);
  if (!preset) throw new Error(`unknown preset "${spec.preset}" (known: ${PRESETS.map((p) => p.name).join(', ')})`);
  const id = spec.id ?? userIdFor(seed, n);
  if (!/^[0-9A-Z]{6}$/.test(id)) throw new Error(`user id must be 6 characters 0-9A-Z, got "${id}"`);
  const zoneHistory = resolveZones(spec, preset);
  const since = spec.since ?? defaultSince;
  if (!isDate(since)) throw new Error(`since must be YYYY-MM-DD, got "${since}"`);
  const rng = createRng(seed, 'traits', id);
  const age = intBetween(rng, 22, 68);
  const gender = rng() < 0.5 ? 'FEMALE' : 'MALE';
  const heightCm = Math.round(gaussian(rng, gender === 'FEMALE' ? 165 : 178, 6));
  const bedMinute = intBetween(rng, 22 * 60, 24 * 60 + 30);
  const traits: UserTraits = {
    restingHr: intBetween(rng, 52, 70),
    maxHr: 220 - age,
    age,
    gender,
    heightCm,
    weightKg: Math.round(gaussian(rng, gender === 'FEMALE' ? 66 : 80, 8) * 10) / 10,
    strideCm: Math.round(heightCm * 0.415),
    bedMinute,
    wakeMinute: intBetween(rng, 6 * 60 + 15, 8 * 60),
    activity: 0.6 + rng() * 0.8,
    notWornRate: 0.04 + rng() * 0.04,
    thinRate: 0.04 + rng() * 0.04,
    napRate: 0.1 + rng() * 0.15,
    runRate: rng() * 0.35,
    fragileNightRate: 0.2 + rng() * 0.1,
  };
  // Overrides draw nothing from rng, so the rest of the user stays what the seed makes it.
  for (const [name, rate] of [['notWornRate', spec.notWornRate], ['thinRate', spec.thinRate]] as const) {
    if (rate === undefined) continue;
    if (!(rate >= 0 && rate <= 1)) throw new Error(`${name} must be a share from 0 to 1`);
    traits[name] = rate;
  }
  if (traits.notWornRate + traits.thinRate > 1) throw new Error('notWornRate and thinRate must add up to at most 1');
  if (spec.batteryPercent !== undefined && !(Number.isInteger(spec.batteryPercent) && spec.batteryPercent >= 1 && spec.batteryPercent <= 100)) {
    throw new Error('batteryPercent must be a whole number from 1 to 100');
  }
  const autoSyncMinutes = spec.autoSyncMinutes ?? preset.autoSyncMinutes;
  if (!Number.isInteger(autoSyncMinutes) || autoSyncMinutes < 0) throw new Error('autoSyncMinutes must be a non-negative integer');
  return {
    id,
    name: spec.name ?? preset.displayName,
    preset: preset.name,
    zoneHistory,
    since,
    autoSyncMinutes,
    autoSyncPhaseMs: (hash32(seed, 'sync-phase', id) % Math.max(1, autoSyncMinutes)) * 60_000,
    devices: [
      {
        id: String(100_000_000 + (hash32(seed, 'device', id) % 900_000_000)),
        model: preset.model,
        kind: 'tracker',
        mac: hash32(seed, 'mac', id).toString(16).toUpperCase().padStart(8, '0') + hash32(seed, 'mac2', id).toString(16).toUpperCase().slice(0, 4).padStart(4, '0'),
        batteryDays: intBetween(rng, 4, 8),
        batteryPhaseMs: Math.floor(rng() * 4 * 86_400_000),
        ...(spec.batteryPercent !== undefined ? { batteryPercent: spec.batteryPercent } : {}),
      },
    ],
    traits,
  };
}

function resolveZones(spec: UserSpec, preset: Preset): ZoneSpan[] {
  const spans: ZoneSpan[] = spec.zoneHistory
    ? spec.zoneHistory.map((s, i) => ({ from: i === 0 ? -Infinity : typeof s.from === 'number' ? s.from : Date.parse(s.from), zone: s.zone }))
    : spec.zone
      ? [{ from: -Infinity, zone: spec.zone }]
      : preset.zoneHistory.map((s) => ({ ...s }));
  for (const s of spans) {
    if (Number.isNaN(s.from)) throw new Error('zoneHistory[].from must be an ISO instant or epoch ms');
    assertZone(s.zone);
  }
  for (let i = 1; i < spans.length; i += 1) {
    if ((spans[i]?.from ?? 0) <= (spans[i - 1]?.from ?? 0)) throw new Error('zoneHistory must be sorted by from');
  }
  if (spans.length === 0) throw new Error('zoneHistory must not be empty');
  return spans;
}
