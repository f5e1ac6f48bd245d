import type { GoogleHealthSimulator } from '@fitlamp/simulators';

/** The Google Health data types fitlamp syncs, as the README's setup subscribes to them. */
export const SUBSCRIBED_DATA_TYPES = [
  'steps',
  'heart-rate',
  'daily-resting-heart-rate',
  'sleep',
  'daily-oxygen-saturation',
  'daily-heart-rate-variability',
  'daily-respiratory-rate',
  'daily-sleep-temperature-derivations',
  'active-zone-minutes',
  'exercise',
];

/**
 * Subscribes a gateway's webhook endpoint at the Google Health simulator as an operator does in
 * production (README, Google Health step 6): the project's service account creates a subscriber
 * with `AUTOMATIC` data types (every consenting user) and `GOOGLE_HEALTH_WEBHOOK_SECRET` as the
 * endpoint's Authorization; the simulator runs the verification handshake against the gateway first.
 */
export async function subscribeGatewayWebhooks(options: { google: GoogleHealthSimulator; googleUrl: string; endpointUri: string; secret: string; subscriberId: string }): Promise<void> {
  const { google, googleUrl } = options;
  const res = await fetch(`${googleUrl}/v4/projects/${google.state.webhooks.projectNumber}/subscribers?subscriberId=${options.subscriberId}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${google.state.webhooks.serviceAccountToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      endpointUri: options.endpointUri,
      subscriberConfigs: [{ dataTypes: SUBSCRIBED_DATA_TYPES, subscriptionCreatePolicy: 'AUTOMATIC' }],
      endpointAuthorization: { secret: options.secret },
    }),
  });
  if (res.status !== 200) throw new Error(`webhook subscriber not created: ${res.status} ${await res.text()}`);
}
