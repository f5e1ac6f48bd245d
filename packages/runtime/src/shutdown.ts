import type { Logger } from 'pino';
import { ConfigError } from './env.ts';

/** Something to close at shutdown, in the order given: workers, producers, servers, db, Redis. */
export interface Closer {
  name: string;
  close: () => Promise<unknown> | unknown;
}

export interface RunningService {
  logger: Logger;
  closers: Closer[];
  /** How long closers get in total before the process exits anyway (SHUTDOWN_TIMEOUT_MS). */
  shutdownTimeoutMs?: number;
}

export interface RunServiceOptions {
  name: string;
  /** Builds and starts the service. Config errors thrown here stop it with exit code 1. */
  start: () => Promise<RunningService>;
  /** Injected by tests; defaults to `process`. */
  proc?: Pick<NodeJS.Process, 'once' | 'exit' | 'stderr'>;
}

/**
 * The one shutdown runner and the only `process.exit` in fitlamp. Starts a service; on the first
 * SIGTERM or SIGINT closes everything in order (a BullMQ worker's close waits for its in-flight
 * job), then exits 0, or 1 if a closer failed or the deadline passed.
 */
export async function runService(options: RunServiceOptions): Promise<void> {
  const proc = options.proc ?? process;
  let running: RunningService;
  try {
    running = await options.start();
  } catch (error) {
    const line =
      error instanceof ConfigError
        ? `${options.name}: configuration error: ${error.message}`
        : `${options.name}: failed to start: ${error instanceof Error ? error.message : String(error)}`;
    proc.stderr.write(`${line}\n`);
    proc.exit(1);
    return;
  }
  const { logger, closers } = running;
  const timeoutMs = running.shutdownTimeoutMs ?? 45_000;
  let stopping = false;

  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, timeoutMs }, 'shutting down');
    const deadline = setTimeout(() => {
      logger.error({ timeoutMs }, 'shutdown deadline passed; exiting with work unfinished');
      proc.exit(1);
    }, timeoutMs);
    deadline.unref();
    let failed = false;
    for (const closer of closers) {
      try {
        await closer.close();
        logger.debug({ closer: closer.name }, 'closed');
      } catch (error) {
        failed = true;
        logger.error({ closer: closer.name, err: error }, 'close failed');
      }
    }
    clearTimeout(deadline);
    logger.info({ failed }, 'stopped');
    proc.exit(failed ? 1 : 0);
  };
  proc.once('SIGTERM', () => void stop('SIGTERM'));
  proc.once('SIGINT', () => void stop('SIGINT'));
  logger.info('started');
}
