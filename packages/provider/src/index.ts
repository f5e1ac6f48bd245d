export {
  STREAMS,
  isStreamName,
  parseStreams,
  ProviderError,
  type StreamName,
  type ProviderName,
  type LampEvent,
  type NormalizedRecord,
  type TokenGrant,
  type AccountInfo,
  type DeviceState,
  type RateInfo,
  type ProviderContext,
  type DayRequest,
  type DayResult,
  type AuthorizationRequest,
  type Provider,
  type ProviderErrorCode,
  type ChangeNotification,
  type NotificationsParse,
} from './provider.ts';
export {
  requestJson,
  headerValue,
  retryAfterAt,
  contextCall,
  type ProviderHttp,
  type JsonCall,
  type JsonAnswer,
  type ResponseHeaders,
} from './http.ts';
export { chunkDays } from './day-chunks.ts';
export {
  offsetAt,
  parseLocal,
  localToUtc,
  localDayAt,
  localDayBounds,
  addDays,
  daysBetween,
  syncWindow,
  type ZoneSpan,
  type ZoneHistory,
  type LocalToUtcOptions,
} from './time-zones.ts';
export { recordKey, canonicalJson, eventHash } from './records.ts';
export {
  LAMP_SENSORS,
  SLEEP_LEVELS,
  sleepLevel,
  deviceRecords,
  type SleepRepresentation,
} from './lamp-mapping.ts';
