import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** A free TCP port on 127.0.0.1 (bound and released; fine for a local test stack). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether `port` on 127.0.0.1 can be bound right now. */
async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A free port whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if ((await portIsFree(port)) && (await portIsFree(port + 10_000))) return port;
  }
  throw new Error('no free port pair for a Redis Cluster node');
}

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * A private redis-server for a run that must be free to FLUSHALL or restart Redis without
 * touching anyone else's queues. Needs the `redis-server` binary (Debian's redis-server package).
 * `port`: listen there (a restart after `stop()`, for clients to reconnect to); a free one else.
 * `aofDir`: keep an append-only file there (`appendfsync always`), so a restart on the same port
 * and dir comes back with every acknowledged write; else nothing is persisted.
 */
export async function startRedisServer(options: { port?: number; aofDir?: string } = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const persistence = options.aofDir
    ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', options.aofDir]
    : ['--appendonly', 'no'];
  return spawnRedis(port, persistence);
}

/** Starts redis-server on `port` with `extraArgs` (persistence and the like) and resolves once it accepts connections. */
async function spawnRedis(port: number, extraArgs: string[]): Promise<RedisServer> {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start within 10 s')), 10_000);
    proc.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`could not start redis-server: ${error.message}`));
    });
    proc.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

export interface RedisCluster {
  /** The masters, in slot order (the first holds slot 0). */
  nodes: RedisServer[];
  /** URL of the first node: a seed for a cluster client. */
  url: string;
  stop(): Promise<void>;
}

/**
 * A private Redis Cluster of `masters` masters (no replicas) on free ports, slots split evenly
 * by `redis-cli --cluster create`, its node files in a temporary directory removed at `stop()`.
 * Needs `redis-server` and `redis-cli`.
 */
export async function startRedisCluster(options: { masters?: number } = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const dir = await mkdtemp(join(tmpdir(), 'fitlamp-redis-cluster-'));
  const nodes: RedisServer[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i += 1) {
      const port = await freeClusterPort();
      nodes.push(
        await spawnRedis(port, ['--appendonly', 'no', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir, '--daemonize', 'no']),
      );
    }
    await execFileAsync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-yes'], { timeout: 30_000 });
    // `create` returns once slots are assigned; wait until every node agrees the cluster is up.
    const deadline = Date.now() + 30_000;
    for (const node of nodes) {
      for (;;) {
        const { stdout } = await execFileAsync('redis-cli', ['-p', String(node.port), 'cluster', 'info']);
        if (stdout.includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error(`redis cluster node ${node.port} not ok within 30 s:\n${stdout}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes, url: nodes[0]!.url, stop };
}
