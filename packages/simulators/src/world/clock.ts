/** A controllable clock: real time by default, or frozen at a chosen instant. */
export interface Clock {
  /** Current simulated time, epoch ms. */
  now(): number;
  /** Jump to an instant (keeps ticking in real time unless frozen). */
  set(ms: number): void;
  /** Move forward (or backward, with a negative value) by `ms`. */
  advance(ms: number): void;
  /** Freeze (true) or let the clock tick with real time again (false). */
  freeze(frozen: boolean): void;
  /** Whether the clock is frozen. */
  isFrozen(): boolean;
}

/**
 * Creates a clock. Without `startAt` it follows real time; with `startAt` it starts frozen there
 * (tests want time to move only when they say so).
 */
export function createClock(options: { startAt?: number; frozen?: boolean } = {}): Clock {
  let frozen = options.frozen ?? options.startAt !== undefined;
  // Simulated time = realNow + offset while ticking; = pinned while frozen.
  let offset = options.startAt === undefined ? 0 : options.startAt - Date.now();
  let pinned = options.startAt ?? Date.now();
  const now = (): number => (frozen ? pinned : Date.now() + offset);
  return {
    now,
    set(ms) {
      pinned = ms;
      offset = ms - Date.now();
    },
    advance(ms) {
      const target = now() + ms;
      pinned = target;
      offset = target - Date.now();
    },
    freeze(value) {
      const current = now();
      frozen = value;
      pinned = current;
      offset = current - Date.now();
    },
    isFrozen: () => frozen,
  };
}

/** An instant as the control APIs accept it: epoch ms or an ISO string. */
export function parseInstant(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string') {
    const t = Date.parse(v);
    if (Number.isFinite(t)) return t;
  }
  return undefined;
}

/**
 * Applies a control API clock change (`{set?, advanceMs?, frozen?}`). Answers what is wrong with
 * the body, or null once applied.
 */
export function applyClockChange(clock: Clock, body: { set?: unknown; advanceMs?: unknown; frozen?: unknown }): string | null {
  const set = body.set === undefined ? undefined : parseInstant(body.set);
  if (body.set !== undefined && set === undefined) return 'set must be an ISO instant or epoch ms';
  if (body.advanceMs !== undefined && (typeof body.advanceMs !== 'number' || !Number.isFinite(body.advanceMs))) return 'advanceMs must be a number';
  if (body.frozen !== undefined && typeof body.frozen !== 'boolean') return 'frozen must be a boolean';
  if (set !== undefined) clock.set(set);
  if (typeof body.advanceMs === 'number') clock.advance(body.advanceMs);
  if (typeof body.frozen === 'boolean') clock.freeze(body.frozen);
  return null;
}
