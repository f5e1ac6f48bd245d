export { createGoogleHealthProvider, type GoogleHealthProviderConfig } from './google-health-provider.ts';
export { SENSORS as GOOGLE_SENSORS } from './normalize.ts';
export { SCOPES as GOOGLE_HEALTH_SCOPES, STREAM_SCOPES } from './oauth.ts';
