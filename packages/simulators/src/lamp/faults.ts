/**
 * Injectable faults for the mindLAMP simulator: what a client of the real server must survive
 * (reference §1.3 and §6: 5xx, slow answers, partial writes, and a timeout or reset after the
 * server committed).
 */

/** What a fault does to a request it matches. */
export type LampFault =
  /** Answer this status (e.g. 500, 502, 503) without doing anything. */
  | { kind: 'status'; status: number; body?: unknown; contentType?: string }
  /** Wait this long, then handle the request normally (other faults may still apply). */
  | { kind: 'latency'; ms: number }
  /** Do the work (store the events, set the tag), then destroy the socket before answering. */
  | { kind: 'store-then-drop' }
  /** Destroy the socket before doing anything. */
  | { kind: 'drop' }
  /** Sensor-event POST only: store the first `stored` events, then answer 500 (an ordered `insertMany` failing mid-batch). */
  | { kind: 'partial-write'; stored: number };

/** A fault and which requests it applies to. */
export interface FaultRuleInput {
  /**
   * Which route: an OpenAPI operation id (`Participant.create_sensor_events`,
   * `Participant.query_sensor_events`, `Participant.view`, `Participant.set_tag`,
   * `Participant.get_tag`, `Participant.list_tags`), a `METHOD /path` as registered
   * (`POST /participant/:id/sensor_event`), or `*` for every mindLAMP route.
   */
  route: string;
  /** Only requests for this participant (the `:id` path parameter). */
  participantId?: string;
  /** Apply to this many matching requests, then disappear; omitted = until cleared. */
  times?: number;
  fault: LampFault;
}

/** A registered fault rule. */
export interface FaultRule extends FaultRuleInput {
  id: string;
  /** How many requests it has been applied to so far. */
  applied: number;
}

/** The registered fault rules, in the order they were added. */
export interface FaultBook {
  rules: FaultRule[];
  nextId: number;
}

/** What to do with one request: total extra latency and at most one terminal fault. */
export interface FaultPlan {
  latencyMs: number;
  terminal?: Exclude<LampFault, { kind: 'latency' }>;
  /** Names of the applied faults, for the request log. */
  applied: string[];
}

/** Creates an empty fault book. */
export function createFaultBook(): FaultBook {
  return { rules: [], nextId: 1 };
}

/**
 * Checks a rule for mistakes a person can fix, and answers a sentence naming the problem, or
 * `undefined` if it is fine.
 */
export function describeFaultRuleProblem(input: unknown): string | undefined {
  if (typeof input !== 'object' || input === null) return 'a fault rule must be an object {route, fault, times?, participantId?}';
  const rule = input as Record<string, unknown>;
  if (typeof rule.route !== 'string' || rule.route === '') return 'route must be an operation id, "METHOD /path" or "*"';
  if (rule.participantId !== undefined && typeof rule.participantId !== 'string') return 'participantId must be a string';
  if (rule.times !== undefined && !(Number.isInteger(rule.times) && (rule.times as number) > 0)) {
    return 'times must be a positive integer (omit it to keep the fault until cleared)';
  }
  const fault = rule.fault as Record<string, unknown> | undefined;
  if (typeof fault !== 'object' || fault === null) return 'fault must be an object with a kind';
  switch (fault.kind) {
    case 'status':
      return Number.isInteger(fault.status) && (fault.status as number) >= 400 && (fault.status as number) <= 599
        ? undefined
        : 'a status fault needs status between 400 and 599';
    case 'latency':
      return Number.isInteger(fault.ms) && (fault.ms as number) >= 0 ? undefined : 'a latency fault needs ms >= 0';
    case 'partial-write':
      return Number.isInteger(fault.stored) && (fault.stored as number) >= 0 ? undefined : 'a partial-write fault needs stored >= 0';
    case 'store-then-drop':
    case 'drop':
      return undefined;
    default:
      return 'fault.kind must be one of status, latency, store-then-drop, drop, partial-write';
  }
}

/** Registers a rule (validate it first with {@link describeFaultRuleProblem}). */
export function addFaultRule(book: FaultBook, input: FaultRuleInput): FaultRule {
  const rule: FaultRule = { ...input, id: `fault-${book.nextId++}`, applied: 0 };
  book.rules.push(rule);
  return rule;
}

/** Removes one rule by id, or all of them; answers how many were removed. */
export function clearFaultRules(book: FaultBook, id?: string): number {
  const before = book.rules.length;
  book.rules = id === undefined ? [] : book.rules.filter((rule) => rule.id !== id);
  return before - book.rules.length;
}

/**
 * Decides the faults for one request and uses up their counts: every matching latency rule adds
 * its delay; the first matching other rule is the terminal fault.
 */
export function takeFaults(
  book: FaultBook,
  request: { operationId: string; routeKey: string; participantId?: string | undefined },
): FaultPlan {
  const plan: FaultPlan = { latencyMs: 0, applied: [] };
  for (const rule of book.rules) {
    const routeMatches = rule.route === '*' || rule.route === request.operationId || rule.route === request.routeKey;
    if (!routeMatches) continue;
    if (rule.participantId !== undefined && rule.participantId !== request.participantId) continue;
    if (rule.fault.kind === 'latency') {
      plan.latencyMs += rule.fault.ms;
    } else if (plan.terminal === undefined) {
      plan.terminal = rule.fault;
    } else {
      continue;
    }
    rule.applied += 1;
    plan.applied.push(rule.fault.kind);
  }
  book.rules = book.rules.filter((rule) => rule.times === undefined || rule.applied < rule.times);
  return plan;
}
