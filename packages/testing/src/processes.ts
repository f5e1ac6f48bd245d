import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, where `node --import tsx <entry>` runs from. */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * How production runs a built bundle: source maps on (stack traces name the TypeScript file and
 * line), and a fixed heap limit. The limit is what keeps memory small: V8 scales how far the heap
 * may grow past the live set with the limit, and its default on a big machine (4 GiB) lets a busy
 * fetcher collect garbage only every ~130 MiB (docs/benchmarks.md, memory).
 * The Dockerfile (`NODE_OPTIONS`, `CMD`) and `pnpm start:*` use the same (test/dockerfile.test.ts).
 */
export const PRODUCTION_NODE_FLAGS = ['--enable-source-maps', '--max-old-space-size=256'];

/** What `scripts/build.mjs` builds: the four services, and the migration CLI (`packages/db`). */
export type BuildTarget = 'gateway' | 'scheduler' | 'fetcher' | 'lamp-writer' | 'migrate';

/**
 * Builds the targets whose `dist/` is missing or whose sources changed (`scripts/build.mjs
 * --if-stale`, the same check `pnpm start:*` makes); returns its report lines, throws with them
 * when the build fails.
 */
export function buildIfStale(targets: BuildTarget[]): string[] {
  const result = spawnSync(process.execPath, [join(repoRoot, 'scripts/build.mjs'), '--if-stale', ...targets], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  const lines = `${result.stdout}${result.stderr}`.split('\n').filter(Boolean);
  if (result.status !== 0) throw new Error(`build failed (${result.status ?? result.signal}):\n${lines.join('\n')}`);
  return lines;
}

export interface ServiceProcess {
  proc: ChildProcess;
  stdout: string[];
  stderr: string[];
  /** Resolves with the first stdout line matching, rejects if the process exits first or time runs out. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
  /** SIGTERM (or another signal) and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/**
 * Starts a fitlamp entry point as a real process with exactly the given environment plus PATH,
 * collecting its output line by line. TypeScript source (`services/gateway/src/main.ts`) runs
 * through tsx; built JavaScript (`services/gateway/dist/main.js`) on plain node with
 * {@link PRODUCTION_NODE_FLAGS}, as in production.
 */
export function startProcess(entry: string, env: Record<string, string>, args: string[] = []): ServiceProcess {
  const runner = /\.[cm]?ts$/.test(entry) ? ['--import', 'tsx'] : PRODUCTION_NODE_FLAGS;
  const proc = spawn(process.execPath, [...runner, entry, ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  const collect = (sink: string[], notify: boolean) => {
    let buffer = '';
    return (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let i: number;
      while ((i = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        sink.push(line);
        if (notify) {
          for (const w of [...waiters]) {
            if (w.pattern.test(line)) {
              waiters.splice(waiters.indexOf(w), 1);
              w.resolve(line);
            }
          }
        }
      }
    };
  };
  proc.stdout!.on('data', collect(stdout, true));
  proc.stderr!.on('data', collect(stderr, false));
  const exited = new Promise<number | string>((resolve) => {
    proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1));
  });
  return {
    proc,
    stdout,
    stderr,
    exited,
    waitForLine(pattern, timeoutMs = 20_000) {
      const seen = stdout.find((l) => pattern.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; stderr: ${stderr.join('\n')}`)),
          timeoutMs,
        );
        waiters.push({
          pattern,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`process exited (${code}) before a line matching ${pattern}; stderr: ${stderr.join('\n')}`));
        });
      });
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}
