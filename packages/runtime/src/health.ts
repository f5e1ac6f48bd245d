import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

/** A named dependency probe: resolves when reachable, rejects otherwise. */
export interface ReadinessCheck {
  name: string;
  check: () => Promise<unknown>;
}

export interface ReadinessReport {
  ok: boolean;
  checks: Record<string, 'ok' | string>;
}

/** Runs every check with a timeout; the report names each dependency that is down and why. */
export async function checkReadiness(checks: ReadinessCheck[], timeoutMs = 2_000): Promise<ReadinessReport> {
  const results = await Promise.all(
    checks.map(async ({ name, check }) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          check(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
        return [name, 'ok'] as const;
      } catch (error) {
        return [name, error instanceof Error ? error.message || error.name : String(error)] as const;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return { ok: results.every(([, r]) => r === 'ok'), checks: Object.fromEntries(results) };
}

export interface OpsServerOptions {
  host: string;
  port: number;
  registry: Registry;
  checks: ReadinessCheck[];
}

/**
 * The small HTTP server a worker runs beside its queue work: `/healthz` (process up),
 * `/readyz` (dependencies reachable, 503 naming what is down) and `/metrics` (Prometheus text).
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
      void checkReadiness(options.checks).then((report) => {
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
