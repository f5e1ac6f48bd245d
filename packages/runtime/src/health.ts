import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from './logger.ts';

/** A named dependency probe: resolves when reachable, rejects otherwise. */
export interface ReadinessCheck {
  name: string;
  check: () => Promise<unknown>;
}

export interface ReadinessReport {
  ok: boolean;
  /** Per dependency: `ok`, `down` (the probe failed) or `timeout` (no answer in time). */
  checks: Record<string, 'ok' | 'down' | 'timeout'>;
}

/**
 * Runs every check with a timeout. The report names each dependency that is down, never the
 * driver's error text (which can carry hosts, users, internals): that goes to `onFailure`, for the log.
 */
export async function checkReadiness(
  checks: ReadinessCheck[],
  timeoutMs = 2_000,
  onFailure?: (name: string, error: unknown) => void,
): Promise<ReadinessReport> {
  const results = await Promise.all(
    checks.map(async ({ name, check }) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          check(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new ReadinessTimeout(timeoutMs)), timeoutMs);
          }),
        ]);
        return [name, 'ok'] as const;
      } catch (error) {
        onFailure?.(name, error);
        return [name, error instanceof ReadinessTimeout ? 'timeout' : 'down'] as const;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return { ok: results.every(([, r]) => r === 'ok'), checks: Object.fromEntries(results) };
}

class ReadinessTimeout extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'ReadinessTimeout';
  }
}

export interface OpsServerOptions {
  host: string;
  port: number;
  registry: Registry;
  checks: ReadinessCheck[];
  /** Where a failed check's error goes (the readiness answer only names the dependency). */
  logger?: Pick<Logger, 'warn'>;
}

/**
 * The small HTTP server a worker runs beside its queue work: `/healthz` (process up),
 * `/readyz` (dependencies reachable, 503 naming what is down) and `/metrics` (Prometheus text).
 * The gateway runs one too: these paths are not on the port the Ingress routes.
 */
export async function startOpsServer(options: OpsServerOptions): Promise<Server & { url: string }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else if (path === '/readyz') {
      const logFailure = (name: string, err: unknown) => options.logger?.warn({ dependency: name, err }, 'readiness check failed');
      void checkReadiness(options.checks, undefined, logFailure).then((report) => {
        res
          .writeHead(report.ok ? 200 : 503, { 'content-type': 'application/json' })
          .end(JSON.stringify({ status: report.ok ? 'ready' : 'not_ready', checks: report.checks }));
      });
    } else if (path === '/metrics') {
      void options.registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': options.registry.contentType }).end(text);
      });
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return Object.assign(server, { url: `http://${options.host}:${port}` });
}
