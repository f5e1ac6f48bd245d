/**
 * `pnpm sim`: starts the simulators on given ports, for the demo and for people trying fitlamp by
 * hand. Every flag `--x-y` can also be set as the environment variable `SIM_X_Y`; a flag beats the
 * environment, which beats the default. `pnpm sim --help` lists them.
 *
 * Adding a simulator is one entry in `SIMULATORS`: its name (the flag and env prefix), its
 * flags, and a `start` that builds its Fastify app.
 */
import { parseArgs } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { createFitbitSimulator } from './fitbit/app.ts';
import { createGoogleHealthSimulator } from './google/app.ts';
import { createLampSimulator } from './lamp/app.ts';
import { DEFAULT_CREDENTIAL } from './lamp/store.ts';

interface FlagSpec {
  description: string;
  default?: string;
}

interface Started {
  app: FastifyInstance;
  /** Lines printed under the URL: what to configure fitlamp with, and how to drive it. */
  describe(url: string): string[];
}

interface SimulatorSpec {
  /** Flag and env prefix: `lamp` → `--lamp-port`, `SIM_LAMP_PORT`. */
  name: string;
  title: string;
  defaultPort: number;
  /** Flags without the prefix (`access-key` → `--lamp-access-key`). `port` is added for every simulator. */
  flags: Record<string, FlagSpec>;
  start(flags: Record<string, string>, common: { seed: string }): Promise<Started>;
}

const SIMULATORS: SimulatorSpec[] = [
  {
    name: 'fitbit',
    title: 'Fitbit Web API',
    defaultPort: 8101,
    flags: {
      'client-id': { description: 'OAuth client id the simulator accepts', default: 'FITLAMPSIM' },
      'client-secret': { description: 'OAuth client secret', default: 'fitlamp-sim-client-secret' },
      'redirect-uris': { description: 'comma-separated redirect URIs registered for the client', default: 'http://127.0.0.1:8080/oauth/fitbit/callback' },
      'app-name': { description: 'application name shown on the consent page', default: 'fitlamp (simulated)' },
    },
    async start(flags, common) {
      const { app } = createFitbitSimulator({
        clientId: flags['client-id'] ?? '',
        clientSecret: flags['client-secret'] ?? '',
        redirectUris: splitList(flags['redirect-uris'] ?? ''),
        appName: flags['app-name'] ?? '',
        seed: common.seed,
      });
      return {
        app,
        describe: (url) => [
          `FITBIT_API_URL=${url} FITBIT_AUTHORIZE_URL=${url}/oauth2/authorize FITBIT_CLIENT_ID=${flags['client-id']} FITBIT_CLIENT_SECRET=${flags['client-secret']}`,
          `redirect URIs: ${flags['redirect-uris']}; control API: ${url}/_control`,
        ],
      };
    },
  },
  {
    name: 'lamp',
    title: 'mindLAMP',
    defaultPort: 8102,
    flags: {
      'access-key': { description: 'researcher credential access key', default: DEFAULT_CREDENTIAL.accessKey },
      'secret-key': { description: 'researcher credential secret key', default: DEFAULT_CREDENTIAL.secretKey },
      participants: {
        description: 'comma-separated participants as id:study (more via POST /_control/participants)',
        default: 'U0000000001:S0000000001,U0000000002:S0000000001',
      },
      'body-limit': { description: 'largest request body in bytes before a 413', default: String(50 * 1024 * 1024) },
    },
    async start(flags) {
      const participants = splitList(flags.participants ?? '').map((item) => {
        const [id, studyId] = item.split(':');
        if (!id || !studyId) throw new Error(`--lamp-participants: "${item}" is not id:study (e.g. U0000000001:S0000000001)`);
        return { id, studyId };
      });
      const bodyLimit = Number(flags['body-limit']);
      if (!Number.isInteger(bodyLimit) || bodyLimit <= 0) throw new Error('--lamp-body-limit must be a positive whole number of bytes');
      const accessKey = flags['access-key'] ?? '';
      const secretKey = flags['secret-key'] ?? '';
      const { app } = createLampSimulator({ credentials: [{ accessKey, secretKey }], participants, bodyLimit });
      return {
        app,
        describe: (url) => [
          `LAMP_API_URL=${url} LAMP_ACCESS_KEY=${accessKey} LAMP_SECRET_KEY=${secretKey}`,
          `participants: ${participants.map((p) => `${p.id} (study ${p.studyId})`).join(', ') || 'none'}`,
          `control API: ${url}/_control (see packages/simulators/README.md)`,
        ],
      };
    },
  },
  {
    name: 'google',
    title: 'Google Health API',
    defaultPort: 8103,
    flags: {
      'client-id': { description: 'Google OAuth client id the simulator accepts', default: 'fitlamp-sim.apps.googleusercontent.com' },
      'client-secret': { description: 'Google OAuth client secret', default: 'fitlamp-sim-google-secret' },
      'redirect-uris': { description: 'comma-separated redirect URIs registered for the client', default: 'http://127.0.0.1:8080/oauth/google-health/callback' },
      'app-name': { description: 'application name shown on the consent page', default: 'fitlamp (simulated)' },
      'testing-mode': { description: 'app in Testing: refresh tokens expire after 7 days (true/false)', default: 'false' },
    },
    async start(flags, common) {
      const sim = createGoogleHealthSimulator({
        clientId: flags['client-id'] ?? '',
        clientSecret: flags['client-secret'] ?? '',
        redirectUris: splitList(flags['redirect-uris'] ?? ''),
        appName: flags['app-name'] ?? '',
        seed: common.seed,
        testingMode: flags['testing-mode'] === 'true',
      });
      const wh = sim.state.webhooks;
      return {
        app: sim.app,
        describe: (url) => [
          `GOOGLE_AUTHORIZE_URL=${url}/o/oauth2/v2/auth GOOGLE_TOKEN_URL=${url}/token GOOGLE_REVOKE_URL=${url}/revoke GOOGLE_HEALTH_API_URL=${url}`,
          `GOOGLE_CLIENT_ID=${flags['client-id']} GOOGLE_CLIENT_SECRET=${flags['client-secret']} GOOGLE_HEALTH_WEBHOOK_KEYSET_URL=${url}/googlehealthapi/webhooks/webhooks_public_keyset.json`,
          `webhook subscribers: POST ${url}/v4/projects/${wh.projectNumber}/subscribers (Bearer ${wh.serviceAccountToken}); control API: ${url}/_control`,
        ],
      };
    },
  },
];

const COMMON_FLAGS: Record<string, FlagSpec> = {
  host: { description: 'interface to listen on', default: '127.0.0.1' },
  seed: { description: 'seed for generated data (same seed, same data)', default: 'fitlamp' },
  only: { description: `comma-separated simulators to start (${SIMULATORS.map((s) => s.name).join(', ')}); default all` },
};

function envName(flag: string): string {
  return `SIM_${flag.toUpperCase().replaceAll('-', '_')}`;
}

function splitList(value: string): string[] {
  return value.split(',').map((item) => item.trim()).filter((item) => item !== '');
}

function allFlags(): Record<string, FlagSpec> {
  const flags: Record<string, FlagSpec> = { ...COMMON_FLAGS };
  for (const sim of SIMULATORS) {
    flags[`${sim.name}-port`] = { description: `${sim.title} simulator port (0 = any free port)`, default: String(sim.defaultPort) };
    for (const [flag, spec] of Object.entries(sim.flags)) flags[`${sim.name}-${flag}`] = spec;
  }
  return flags;
}

function usage(): string {
  const lines = ['Usage: pnpm sim [flags]', '', 'Starts the fitlamp simulators. Every flag can also be set by its environment variable.', ''];
  for (const [flag, spec] of Object.entries(allFlags())) {
    const fallback = spec.default === undefined ? '' : ` [${spec.default}]`;
    lines.push(`  --${flag.padEnd(22)} ${envName(flag).padEnd(26)} ${spec.description}${fallback}`);
  }
  lines.push('  --help', '', 'Example: pnpm sim --lamp-port 8102 --fitbit-port 8101 --seed demo');
  return lines.join('\n');
}

/** Resolves every flag: command line, then `SIM_*` environment, then default. */
function readConfig(argv: string[]): { help: boolean; values: Record<string, string> } {
  const flags = allFlags();
  const { values: parsed } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      ...Object.fromEntries(Object.keys(flags).map((flag) => [flag, { type: 'string' as const }])),
    },
    strict: true,
  });
  const values = parsed as Record<string, string | boolean | undefined>;
  const resolved: Record<string, string> = {};
  for (const [flag, spec] of Object.entries(flags)) {
    const value = values[flag] ?? process.env[envName(flag)] ?? spec.default;
    if (typeof value === 'string') resolved[flag] = value;
  }
  return { help: values.help === true, values: resolved };
}

function flagsOf(sim: SimulatorSpec, values: Record<string, string>): Record<string, string> {
  const own: Record<string, string> = {};
  for (const flag of Object.keys(sim.flags)) {
    const value = values[`${sim.name}-${flag}`];
    if (value !== undefined) own[flag] = value;
  }
  return own;
}

async function main(): Promise<void> {
  let config: ReturnType<typeof readConfig>;
  try {
    config = readConfig(process.argv.slice(2));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${usage()}`);
    process.exitCode = 2;
    return;
  }
  if (config.help) {
    console.log(usage());
    return;
  }
  const { values } = config;
  const host = values.host ?? '127.0.0.1';
  const only = values.only === undefined ? undefined : splitList(values.only);
  const unknown = (only ?? []).filter((name) => !SIMULATORS.some((sim) => sim.name === name));
  if (unknown.length > 0) {
    console.error(`--only: unknown simulator ${unknown.join(', ')}; known: ${SIMULATORS.map((s) => s.name).join(', ')}`);
    process.exitCode = 2;
    return;
  }

  const running: FastifyInstance[] = [];
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    stopping = true;
    await Promise.allSettled(running.map((app) => app.close()));
    // Everything we started is closed; exit even if a library left a timer behind.
    process.exit(code);
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(130); // a second signal: the user wants out now
      console.log(`\n${signal}: stopping the simulators`);
      void stop(0);
    });
  }

  console.log('fitlamp simulators (Ctrl-C to stop)');
  for (const sim of SIMULATORS) {
    if (only && !only.includes(sim.name)) continue;
    const port = Number(values[`${sim.name}-port`]);
    try {
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--${sim.name}-port must be a port number (0-65535)`);
      const started = await sim.start(flagsOf(sim, values), { seed: values.seed ?? '' });
      running.push(started.app);
      const address = await started.app.listen({ port, host });
      const url = address.replace('[::1]', 'localhost');
      console.log(`${sim.title} simulator: ${url}`);
      for (const line of started.describe(url)) console.log(`    ${line}`);
    } catch (error) {
      console.error(`${sim.title} simulator did not start: ${(error as Error).message}`);
      await stop(1);
      return;
    }
  }
  if (running.length === 0) {
    console.error('no simulator started');
    process.exitCode = 1;
  }
}

await main();
