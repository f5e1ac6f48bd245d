import { execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server.ts';

/** Where Debian's PostgreSQL 15 puts its server programs; `PG_BIN` overrides. */
const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PostgresServer {
  /** Superuser URL of the `postgres` database (create and drop databases through it). */
  adminUrl: string;
  port: number;
  dataDir: string;
  /** URL of database `name` on this server. */
  databaseUrl(name: string): string;
  /** Fast shutdown, then start again on the same port and data (clients must reconnect). */
  restart(): Promise<void>;
  /** Stops the server (fast shutdown) and deletes its data directory. */
  stop(): Promise<void>;
}

/**
 * A private PostgreSQL cluster in a temporary directory (initdb, then pg_ctl on a free port on
 * 127.0.0.1, trust authentication), for a run whose figures must not mix with anyone else's: the
 * WAL position and the cluster's size then move only with this run's work. Default settings of
 * initdb (shared_buffers 128 MB, fsync and full_page_writes on, as the machine's own cluster),
 * plus `settings`. Postgres refuses to run as root: as root, the programs run as the `postgres`
 * user, who then owns the directory.
 */
export async function startPostgresServer(options: { settings?: Record<string, string> } = {}): Promise<PostgresServer> {
  const dataDir = mkdtempSync(join(os.tmpdir(), 'fitlamp-pg-'));
  const asUser: { uid?: number; gid?: number } = {};
  if (process.getuid?.() === 0) {
    asUser.uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    asUser.gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dataDir, asUser.uid, asUser.gid);
  }
  const run = (program: string, args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const proc = spawn(join(PG_BIN, program), args, { ...asUser, cwd: os.tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      proc.stdout!.on('data', (c: Buffer) => (output += c.toString()));
      proc.stderr!.on('data', (c: Buffer) => (output += c.toString()));
      proc.once('error', (error) => reject(new Error(`could not run ${program}: ${error.message}`)));
      proc.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${program} exited with ${code}: ${output.slice(-2000)}`))));
    });
  const port = await freePort();
  let serverArgs = '';
  const start = () => run('pg_ctl', ['-D', dataDir, '-o', serverArgs, '-l', join(dataDir, 'server.log'), '-w', '-t', '60', 'start']);
  try {
    await run('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C.UTF-8', '--no-sync']);
    const settings: Record<string, string> = {
      port: String(port),
      listen_addresses: '127.0.0.1',
      unix_socket_directories: dataDir,
      max_connections: '200',
      ...options.settings,
    };
    serverArgs = Object.entries(settings)
      .map(([k, v]) => `-c ${k}=${v}`)
      .join(' ');
    await start();
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  const databaseUrl = (name: string) => `postgres://postgres@127.0.0.1:${port}/${name}`;
  let stopped = false;
  return {
    adminUrl: databaseUrl('postgres'),
    port,
    dataDir,
    databaseUrl,
    async restart() {
      await run('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', '-t', '60', 'stop']);
      await start();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await run('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', '-t', '60', 'stop']);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}
