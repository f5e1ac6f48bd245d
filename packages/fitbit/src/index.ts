export { createFitbitProvider, type FitbitProviderConfig } from './fitbit-provider.ts';
export { SENSORS as FITBIT_SENSORS } from './normalize.ts';
export { STREAM_SCOPES } from './oauth.ts';
