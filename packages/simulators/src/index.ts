// mindLAMP simulator
export { createLampSimulator, LAMP_DEFAULT_BODY_LIMIT, type LampSimulator, type LampSimulatorOptions } from './lamp/app.ts';
export type { FaultRule, FaultRuleInput, LampFault } from './lamp/faults.ts';
export {
  DEFAULT_CREDENTIAL as LAMP_DEFAULT_CREDENTIAL,
  DEFAULT_RESEARCHER_ID as LAMP_DEFAULT_RESEARCHER_ID,
  type DuplicateReport,
  type RepeatReport,
  type CorrectedDatum,
  type EventCounts,
  type LampCredential,
  type LampParticipantInput,
  type LampStudyInput,
  type RequestLogEntry,
  type StoredEvent,
} from './lamp/store.ts';

// Fitbit Web API simulator and the deterministic world behind it
export { createFitbitSimulator, type FitbitSimulator, type FitbitSimulatorOptions } from './fitbit/app.ts';
export type { Counters as FitbitCounters, Fault as FitbitFault, ServedFault as FitbitServedFault, RecordedRequest as FitbitRecordedRequest } from './fitbit/state.ts';
export type { FaultSpec as FitbitFaultSpec } from './fitbit/faults.ts';
export { createClock, type Clock } from './world/clock.ts';
export { createRng, intBetween } from './world/random.ts';
export {
  addUser,
  createWorld,
  dayTruth,
  findUser,
  lastSync,
  moveUser,
  nightTruth,
  syncUser,
  viewDay,
  viewDevices,
  viewNight,
  type DayView,
  type NightView,
  type World,
  type WorldOptions,
} from './world/world.ts';
export { PRESETS, type UserSpec, type WorldUser } from './world/users.ts';
export type { DayTruth, ExerciseTruth } from './world/day.ts';
export type { NightTruth, NightlySummary, SleepSession, SleepStage } from './world/sleep.ts';
export type { ZoneHistory, ZoneSpan } from './world/zones.ts';

// Google Health API simulator (same world as the Fitbit simulator)
export { createGoogleHealthSimulator, type GoogleHealthSimulator, type GoogleHealthSimulatorOptions } from './google/app.ts';
export { STREAM_DATA_TYPES as GOOGLE_STREAM_DATA_TYPES, SCOPES as GOOGLE_HEALTH_SCOPES } from './google/catalogue.ts';
export type { Counters as GoogleCounters, Fault as GoogleFault } from './google/state.ts';
export type { FaultSpec as GoogleFaultSpec } from './google/faults.ts';
export type { Delivery as GoogleWebhookDelivery, WebhookOptions as GoogleWebhookOptions } from './google/webhooks.ts';
export { envelope as googleWebhookEnvelope, signBody as signGoogleWebhookBody } from './google/webhooks.ts';
