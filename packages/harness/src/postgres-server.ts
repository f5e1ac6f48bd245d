import { execFile, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './redis-server.ts';

const run = promisify(execFile);

/** Where Debian's postgresql-15 package puts initdb, pg_ctl and postgres. */
const PG_BIN = process.env.FITLAMP_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PostgresServer {
  /** The `postgres` database of the cluster, as superuser `postgres` (trust auth). */
  adminUrl: string;
  /** A database of this cluster by name. */
  urlOf(database: string): string;
  port: number;
  /** Fast shutdown then start again on the same port and data (clients must reconnect). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A private Postgres cluster for a run that must be free to restart Postgres or kill its
 * connections without touching anyone else's databases: initdb into a temp dir, trust auth on
 * 127.0.0.1 and a free port. Needs the postgresql server binaries (FITLAMP_PG_BIN to override the
 * Debian path). As root, the cluster runs as the `postgres` user (Postgres refuses root).
 */
export async function startPostgresServer(): Promise<PostgresServer> {
  const dir = mkdtempSync(join(tmpdir(), 'fitlamp-pg-'));
  const data = join(dir, 'data');
  const asRoot = userInfo().uid === 0;
  let owner: { uid: number; gid: number } | undefined;
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    owner = { uid: Number(stdout.trim()), gid: Number(gid.trim()) };
    chownSync(dir, owner.uid, owner.gid);
  }
  const as = owner ? { uid: owner.uid, gid: owner.gid } : {};
  const pg = (bin: string, args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const proc = spawn(join(PG_BIN, bin), args, { ...as, stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
      let output = '';
      proc.stdout!.on('data', (c: Buffer) => (output += c.toString()));
      proc.stderr!.on('data', (c: Buffer) => (output += c.toString()));
      proc.once('error', (error) => reject(new Error(`could not run ${bin}: ${error.message}`)));
      proc.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${bin} ${args.join(' ')} exited ${code}: ${output.slice(-2000)}`))));
    });
  await pg('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c max_connections=300 -c fsync=off -c full_page_writes=off`;
  const start = () => pg('pg_ctl', ['-D', data, '-l', join(dir, 'postgres.log'), '-o', options, '-w', '-t', '120', 'start']);
  const stop = () => pg('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '120', 'stop']);
  try {
    await start();
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const urlOf = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;
  return {
    adminUrl: urlOf('postgres'),
    urlOf,
    port,
    async restart() {
      await stop();
      await start();
    },
    async stop() {
      await stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
