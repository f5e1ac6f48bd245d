export { createFitbitProvider, FITBIT_SOURCE, type FitbitProviderConfig } from './fitbit-provider.ts';
export { STREAM_SCOPES } from './oauth.ts';
