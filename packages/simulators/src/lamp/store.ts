/**
 * The mindLAMP simulator's in-memory state: who exists (researchers, studies, participants), which
 * credentials are accepted, every sensor event stored, tags, and a log of the requests received.
 *
 * Behaviour follows `shared/reference/mindlamp-api.md` (cited below as "reference §n").
 */

/** A credential the simulator accepts as HTTP Basic `accessKey:secretKey`. */
export interface LampCredential {
  accessKey: string;
  secretKey: string;
  /**
   * Whom the credential acts for, as LAMP's `origin`: a researcher id (the default, and the kind
   * fitlamp should use), a study or participant id, or `null` for a root/admin credential, which
   * skips every ownership and existence check (reference §1.6).
   */
  origin?: string | null;
}

/** A participant that exists on the simulated server, enrolled in one study. */
export interface LampParticipantInput {
  id: string;
  studyId: string;
}

/** A study, owned by a researcher. Studies referenced only by participants belong to {@link DEFAULT_RESEARCHER_ID}. */
export interface LampStudyInput {
  id: string;
  researcherId: string;
}

/** Options that decide what exists when the store is created (and after a reset). */
export interface LampWorldOptions {
  /** Accepted credentials; default: one researcher credential ({@link DEFAULT_CREDENTIAL}). */
  credentials?: LampCredential[];
  /** Studies and their researcher; optional. */
  studies?: LampStudyInput[];
  /** Participants that exist, with their study. */
  participants?: LampParticipantInput[];
}

/** The researcher that owns studies nobody declared an owner for, and the default credential's origin. */
export const DEFAULT_RESEARCHER_ID = 'R0000000001';

/** The credential accepted when none are configured. */
export const DEFAULT_CREDENTIAL: Required<LampCredential> = {
  accessKey: 'researcher@fitlamp.test',
  secretKey: 'fitlamp-sim-secret',
  origin: DEFAULT_RESEARCHER_ID,
};

/** One stored sensor event, with the bookkeeping the simulator adds around it. */
export interface StoredEvent {
  /** Arrival order across the whole simulator, from 1. */
  seq: number;
  /** The `_parent` the real server stores: the raw path id (so `me` stays `me`, reference §1.6). */
  participantId: string;
  /** Milliseconds since epoch when the simulator stored it. */
  receivedAt: number;
  /** The document as the real server stores and returns it: `{...sent, timestamp, sensor, data}`. */
  event: Record<string, unknown>;
}

/** One tag (attachment), keyed like the real `tag` collection: owner, target type and key. */
export interface StoredTag {
  parent: string;
  target: string;
  key: string;
  /** JSON text, as the real server stores it. */
  value: string;
}

/** One request the simulator received on the mindLAMP API (never the control API). */
export interface RequestLogEntry {
  seq: number;
  at: number;
  method: string;
  url: string;
  /** The OpenAPI operation id, e.g. `Participant.create_sensor_events`. */
  operationId: string;
  participantId?: string;
  /** For sensor-event POSTs: how many events the body carried. */
  eventCount?: number;
  /** For sensor-event POSTs: how many of them were stored (fewer than `eventCount` after a partial write or an error). */
  storedCount?: number;
  /** The status answered; `null` when the connection was dropped instead. */
  status: number | null;
  outcome: 'answered' | 'dropped';
  /** The faults applied to this request, e.g. `["latency", "store-then-drop"]`. */
  faults: string[];
}

/** The whole mutable state. Plain data; the functions below are the only writers. */
export interface LampStore {
  options: LampWorldOptions;
  credentials: Required<LampCredential>[];
  researchers: Set<string>;
  /** study id → researcher id */
  studies: Map<string, string>;
  /** participant id → study id */
  participants: Map<string, string>;
  events: StoredEvent[];
  tags: Map<string, StoredTag>;
  requests: RequestLogEntry[];
  nextEventSeq: number;
  nextRequestSeq: number;
}

/** A LAMP error: the message is `<status>.<slug>` and the HTTP status is its prefix (reference §1.4). */
export class LampError extends Error {
  override name = 'LampError';
}

/** Creates the store with what `options` says exists. */
export function createLampStore(options: LampWorldOptions = {}): LampStore {
  const store: LampStore = {
    options,
    credentials: [],
    researchers: new Set(),
    studies: new Map(),
    participants: new Map(),
    events: [],
    tags: new Map(),
    requests: [],
    nextEventSeq: 1,
    nextRequestSeq: 1,
  };
  resetLampStore(store);
  return store;
}

/** Forgets everything received and added since creation; back to what the options say exists. */
export function resetLampStore(store: LampStore): void {
  store.credentials = [];
  store.researchers = new Set([DEFAULT_RESEARCHER_ID]);
  store.studies = new Map();
  store.participants = new Map();
  store.events = [];
  store.tags = new Map();
  store.requests = [];
  store.nextEventSeq = 1;
  store.nextRequestSeq = 1;
  const credentials = store.options.credentials ?? [DEFAULT_CREDENTIAL];
  for (const credential of credentials) addCredential(store, credential);
  for (const study of store.options.studies ?? []) addStudy(store, study);
  for (const participant of store.options.participants ?? []) addParticipant(store, participant);
}

/** Accepts one more credential. */
export function addCredential(store: LampStore, credential: LampCredential): Required<LampCredential> {
  const origin = credential.origin === undefined ? DEFAULT_RESEARCHER_ID : credential.origin;
  const added = { accessKey: credential.accessKey, secretKey: credential.secretKey, origin };
  // An origin nobody declared is taken to be a researcher, so that ownership walks can end there.
  if (origin !== null && selfTypeOf(store, origin) === undefined) store.researchers.add(origin);
  store.credentials.push(added);
  return added;
}

/** Adds (or re-owns) a study. */
export function addStudy(store: LampStore, study: LampStudyInput): void {
  store.researchers.add(study.researcherId);
  store.studies.set(study.id, study.researcherId);
}

/** Adds a participant (and its study, owned by the default researcher, if the study is new). */
export function addParticipant(store: LampStore, participant: LampParticipantInput): void {
  if (!store.studies.has(participant.studyId)) addStudy(store, { id: participant.studyId, researcherId: DEFAULT_RESEARCHER_ID });
  store.participants.set(participant.id, participant.studyId);
}

/** Which kind of thing an id names, as LAMP's `TypeRepository._self_type`; `undefined` if unknown. */
export function selfTypeOf(store: LampStore, id: string): 'Participant' | 'Study' | 'Researcher' | undefined {
  if (store.participants.has(id)) return 'Participant';
  if (store.researchers.has(id)) return 'Researcher';
  if (store.studies.has(id)) return 'Study';
  return undefined;
}

/**
 * The owner of an id, as LAMP's `TypeRepository._owner`: a participant's study, a study's
 * researcher, `null` for a researcher. An unknown id is `404.resource-not-found` (reference §1.6:
 * observed for a researcher credential and a participant that doesn't exist).
 */
export function ownerOf(store: LampStore, id: string): string | null {
  const study = store.participants.get(id);
  if (study !== undefined) return study;
  if (store.researchers.has(id)) return null;
  const researcher = store.studies.get(id);
  if (researcher !== undefined) return researcher;
  throw new LampError('404.resource-not-found');
}

/** Ancestors of an id, greatest first (researcher, then study), as `TypeRepository._parent(...).reverse()`. */
export function ancestorsOf(store: LampStore, id: string): string[] {
  const ancestors: string[] = [];
  let current: string | null = selfTypeOf(store, id) === undefined ? null : ownerOf(store, id);
  while (current !== null) {
    // An id used twice (a participant named like the researcher) would make a cycle: say so
    // instead of looping forever inside a request.
    if (current === id || ancestors.includes(current)) throw new Error(`the lamp simulator's ids form a cycle at "${current}": an id is used for two objects`);
    ancestors.unshift(current);
    current = ownerOf(store, current);
  }
  return ancestors;
}

/**
 * `Number.parse` as the real server applies it to timestamps and query numbers (reference §1.2):
 * numbers and numeric strings pass, anything else becomes `undefined`.
 */
export function parseLampNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  const parsed = Number(value);
  return Number.isFinite(parsed) ? parsed : undefined;
}

/**
 * Stores sensor events exactly as the real Mongo repository does (reference §1.2): nothing is
 * validated, extra top-level keys are kept, `timestamp` goes through `Number.parse` (junk is stored
 * as no timestamp), `sensor` through `String()` (missing becomes `"undefined"`), `data` defaults to
 * `{}`. No dedupe: the same event posted twice is stored twice (reference §6).
 *
 * The documents are all built before any is stored, so an element the real code would throw on
 * (`null`) stores nothing and answers 500 with the raw message. With `storeAtMost`, only that
 * many are stored and then the write fails, like an ordered `insertMany` failing mid-batch
 * (reference §1.3, §6 hazard b).
 */
export function insertEvents(
  store: LampStore,
  participantId: string,
  objects: unknown[],
  storeAtMost?: number,
): void {
  const documents = objects.map((object) => toStoredDocument(object));
  // The Mongo driver rejects an empty insertMany (reference §1.3: read from code, an inference).
  if (documents.length === 0) throw new Error('Invalid BulkOperation, Batch cannot be empty');
  const count = storeAtMost === undefined ? documents.length : Math.min(storeAtMost, documents.length);
  const receivedAt = Date.now();
  for (const event of documents.slice(0, count)) {
    store.events.push({ seq: store.nextEventSeq++, participantId, receivedAt, event });
  }
  if (count < documents.length) {
    throw new Error(`MongoBulkWriteError: simulated write failure after ${count} of ${documents.length} documents`);
  }
}

function toStoredDocument(object: unknown): Record<string, unknown> {
  if (object === null || object === undefined) {
    // What `object.timestamp` throws in the real `_insert`.
    throw new TypeError(`Cannot read properties of ${String(object)} (reading 'timestamp')`);
  }
  const sent = object as Record<string, unknown>;
  const copy: Record<string, unknown> = typeof object === 'object' || typeof object === 'string' ? { ...sent } : {};
  return {
    ...copy,
    // Mongo stores an undefined field as null, so a junk timestamp reads back as null.
    timestamp: parseLampNumber(sent.timestamp) ?? null,
    sensor: String(sent.sensor),
    data: sent.data ?? {},
  };
}

/** A `GET /participant/{id}/sensor_event` query, already passed through `Number.parse`. */
export interface SelectQuery {
  participantId: string;
  origin?: string | undefined;
  from?: number | undefined;
  to?: number | undefined;
  limit?: number | undefined;
}

const LIMIT_DEFAULT = 1000;
const LIMIT_MAX = 2_147_483_647;

/**
 * Reads events like the real `_select` (reference §2.1): `origin` is an exact sensor match,
 * `from` inclusive, `to` exclusive (`to + 1` when `from === to`), a zero `from`/`to` is ignored;
 * `limit` defaults to 1000 and is clamped to ±2^31-1; positive = newest first, negative = oldest
 * first, zero = no limit. Ties keep arrival order. Events without a timestamp sort lowest and
 * never match a time range (Mongo compares null below numbers).
 */
export function selectEvents(store: LampStore, query: SelectQuery): Record<string, unknown>[] {
  const limit = Math.min(Math.max(query.limit ?? LIMIT_DEFAULT, -LIMIT_MAX), LIMIT_MAX);
  const { from, to } = query;
  const upper = to ? (from === to ? to + 1 : to) : undefined;
  const matching = store.events.filter(({ participantId, event }) => {
    if (participantId !== query.participantId) return false;
    if (query.origin && event.sensor !== query.origin) return false;
    const ts = event.timestamp;
    if (from || upper !== undefined) {
      if (typeof ts !== 'number') return false;
      if (from && ts < from) return false;
      if (upper !== undefined && ts >= upper) return false;
    }
    return true;
  });
  const ascending = limit < 0;
  const sorted = matching
    .map((stored, index) => ({ stored, index }))
    .sort((a, b) => {
      const byTime = timeKey(a.stored) - timeKey(b.stored);
      return byTime === 0 ? a.index - b.index : ascending ? byTime : -byTime;
    })
    .map(({ stored }) => stored);
  const limited = limit === 0 ? sorted : sorted.slice(0, Math.abs(limit));
  return limited.map(({ event }) => publicDocument(event));
}

function timeKey(stored: StoredEvent): number {
  const ts = stored.event.timestamp;
  return typeof ts === 'number' ? ts : Number.NEGATIVE_INFINITY;
}

/** Strips the internal fields the real server strips on read (`_id`, `__v`, `_parent`, `_deleted`). */
function publicDocument(event: Record<string, unknown>): Record<string, unknown> {
  const { _id, __v, _parent, _deleted, ...rest } = event;
  return rest;
}

/** A filter for the test-facing reads. */
export interface EventFilter {
  participantId?: string | undefined;
  sensor?: string | undefined;
}

/** Every stored event matching the filter, in arrival order. */
export function listEvents(store: LampStore, filter: EventFilter = {}): StoredEvent[] {
  return store.events.filter(
    ({ participantId, event }) =>
      (filter.participantId === undefined || participantId === filter.participantId) &&
      (filter.sensor === undefined || event.sensor === filter.sensor),
  );
}

/** Stored event counts: in total, per participant, and per participant and sensor. */
export interface EventCounts {
  total: number;
  participants: Record<string, { total: number; sensors: Record<string, number> }>;
}

/** Counts the stored events. */
export function countEvents(store: LampStore): EventCounts {
  const counts: EventCounts = { total: 0, participants: {} };
  for (const { participantId, event } of store.events) {
    const sensor = String(event.sensor);
    const perParticipant = (counts.participants[participantId] ??= { total: 0, sensors: {} });
    counts.total += 1;
    perParticipant.total += 1;
    perParticipant.sensors[sensor] = (perParticipant.sensors[sensor] ?? 0) + 1;
  }
  return counts;
}

/** A set of stored events that are duplicates of each other. */
export interface DuplicateGroup {
  participantId: string;
  sensor: string;
  timestamp: number | null;
  data: unknown;
  /** How many times it is stored (at least 2). */
  count: number;
  /** The `seq` of every copy, in arrival order. */
  seqs: number[];
}

/** The duplicates stored, and how many copies beyond the first there are in total. */
export interface DuplicateReport {
  groups: DuplicateGroup[];
  extraCopies: number;
}

/**
 * Finds duplicates. A duplicate is a stored event with the same participant (the stored parent),
 * sensor, timestamp and identical `data` (deep equality, key order ignored) as an earlier one.
 * Extra top-level keys are not compared: mindLAMP's consumers only read `timestamp`, `sensor`
 * and `data`.
 */
export function findDuplicates(store: LampStore, filter: EventFilter = {}): DuplicateReport {
  const groups = new Map<string, DuplicateGroup>();
  for (const { seq, participantId, event } of listEvents(store, filter)) {
    const timestamp = typeof event.timestamp === 'number' ? event.timestamp : null;
    const sensor = String(event.sensor);
    const key = JSON.stringify([participantId, sensor, timestamp, canonicalJson(event.data)]);
    const group = groups.get(key);
    if (group) {
      group.count += 1;
      group.seqs.push(seq);
    } else {
      groups.set(key, { participantId, sensor, timestamp, data: event.data, count: 1, seqs: [seq] });
    }
  }
  const duplicates = [...groups.values()].filter((group) => group.count > 1);
  return { groups: duplicates, extraCopies: duplicates.reduce((sum, group) => sum + group.count - 1, 0) };
}

/** A stored datum with the corrections stored for it. */
export interface CorrectedDatum {
  participantId: string;
  sensor: string;
  timestamp: number;
  duration?: unknown;
  /** Its `data.value` plus the values of the corrections stored at its instant. */
  value: number;
  /** How many corrections were added. */
  corrections: number;
  seq: number;
}

/**
 * The stored events as datums, in arrival order: every event that is not a correction, with the
 * corrections (`data.correction === true`) stored for the same participant, sensor and instant
 * added to its `data.value`: what sums over time bins (Cortex's, for `lamp.steps`) make of it. A
 * datum stored twice appears twice, each with the corrections added, so nothing is collapsed.
 */
export function listCorrectedDatums(store: LampStore, filter: EventFilter = {}): CorrectedDatum[] {
  const events = listEvents(store, filter).filter((e) => typeof e.event.timestamp === 'number');
  const dataOf = (event: Record<string, unknown>) => (event.data !== null && typeof event.data === 'object' ? event.data : {}) as Record<string, unknown>;
  const valueOf = (data: Record<string, unknown>) => (typeof data.value === 'number' ? data.value : 0);
  const instant = (participantId: string, event: Record<string, unknown>) => JSON.stringify([participantId, String(event.sensor), event.timestamp]);
  const corrections = new Map<string, { sum: number; count: number }>();
  for (const { participantId, event } of events) {
    const data = dataOf(event);
    if (data.correction !== true) continue;
    const key = instant(participantId, event);
    const entry = corrections.get(key) ?? { sum: 0, count: 0 };
    entry.sum += valueOf(data);
    entry.count += 1;
    corrections.set(key, entry);
  }
  return events.flatMap(({ seq, participantId, event }) => {
    const data = dataOf(event);
    if (data.correction === true) return [];
    const added = corrections.get(instant(participantId, event)) ?? { sum: 0, count: 0 };
    return [
      {
        participantId,
        sensor: String(event.sensor),
        timestamp: event.timestamp as number,
        ...(event.duration === undefined ? {} : { duration: event.duration }),
        value: valueOf(data) + added.sum,
        corrections: added.count,
        seq,
      },
    ];
  });
}

/** JSON text with object keys sorted, so that `{a,b}` and `{b,a}` compare equal. */
/** Stored events that describe one datum, however many sources or values they carry. */
export interface RepeatGroup {
  participantId: string;
  sensor: string;
  timestamp: number | null;
  /**
   * What tells datums at one instant apart: `[sleep stage or null, "instant" | "span", correction]`,
   * where correction is false for a datum, else its `data.revision` (true if it has none).
   */
  identity: [string | null, 'instant' | 'span', number | boolean];
  /** How many are stored (at least 2). */
  count: number;
  /** `data.source` of each copy, in arrival order. */
  sources: Array<string | null>;
  seqs: number[];
}

/** The datums stored more than once, and how many copies beyond the first there are in total. */
export interface RepeatReport {
  groups: RepeatGroup[];
  extraCopies: number;
}

/**
 * Counts stored events per participant, sensor, timestamp and source-independent identity, and
 * answers those stored more than once. Unlike {@link findDuplicates}, the values and `data.source`
 * are not compared: a minute sent from the legacy Fitbit API and again from the Google Health API
 * (or twice with different values) is one datum counted twice, which sums in Cortex would double.
 * What keeps datums at one instant apart: the sleep stage (`data.stage`), whether the event spans
 * time (`duration`: a day's total vs the 00:00 minute), and a correction mark
 * (`data.correction === true`) with its `data.revision`: a correction is counted apart from the
 * datum it corrects, and each revision of a datum's correction apart from the others, so a
 * correction is never a repeat, but the same correction stored twice is.
 */
export function findRepeats(store: LampStore, filter: EventFilter = {}): RepeatReport {
  const groups = new Map<string, RepeatGroup>();
  for (const { seq, participantId, event } of listEvents(store, filter)) {
    const timestamp = typeof event.timestamp === 'number' ? event.timestamp : null;
    const sensor = String(event.sensor);
    const data = (event.data !== null && typeof event.data === 'object' ? event.data : {}) as Record<string, unknown>;
    const identity: RepeatGroup['identity'] = [
      typeof data.stage === 'string' ? data.stage : null,
      event.duration === undefined || event.duration === null ? 'instant' : 'span',
      data.correction === true ? (typeof data.revision === 'number' ? data.revision : true) : false,
    ];
    const key = JSON.stringify([participantId, sensor, timestamp, identity]);
    const source = typeof data.source === 'string' ? data.source : null;
    const group = groups.get(key);
    if (group) {
      group.count += 1;
      group.sources.push(source);
      group.seqs.push(seq);
    } else {
      groups.set(key, { participantId, sensor, timestamp, identity, count: 1, sources: [source], seqs: [seq] });
    }
  }
  const repeated = [...groups.values()].filter((group) => group.count > 1);
  return { groups: repeated, extraCopies: repeated.reduce((sum, group) => sum + group.count - 1, 0) };
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) =>
    inner !== null && typeof inner === 'object' && !Array.isArray(inner)
      ? Object.fromEntries(Object.entries(inner).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : inner,
  );
}

function tagKey(parent: string, target: string, key: string): string {
  return JSON.stringify([parent, target, key]);
}

/** Sets a tag, or deletes it when the value is `null`/`undefined` (reference §2.2: an upsert). */
export function setTag(store: LampStore, parent: string, target: string, key: string, value: unknown): void {
  const id = tagKey(parent, target, key);
  if (value === null || value === undefined) store.tags.delete(id);
  else store.tags.set(id, { parent, target, key, value: JSON.stringify(value) });
}

/**
 * The tag conditions in the real lookup order (LAMP-server `TypeRepository._get`/`_list`):
 * explicit parent ownership (greatest ancestor first), implicit parent ownership by type, then
 * explicit and implicit (`me`) self ownership.
 */
function tagOwners(store: LampStore, id: string): { parent: string; target: string }[] {
  const ancestors = ancestorsOf(store, id);
  const selfType = selfTypeOf(store, id) ?? '__broken_id__';
  return [
    ...ancestors.map((parent) => ({ parent, target: id })),
    ...ancestors.map((parent) => ({ parent, target: selfType })),
    { parent: id, target: id },
    { parent: id, target: 'me' },
  ];
}

/** A tag's value as seen from `id`; `404.object-not-found` when none applies (reference §2.2). */
export function getTag(store: LampStore, id: string, key: string): unknown {
  for (const owner of tagOwners(store, id)) {
    const tag = store.tags.get(tagKey(owner.parent, owner.target, key));
    if (tag) return JSON.parse(tag.value) as unknown;
  }
  throw new LampError('404.object-not-found');
}

/** The tag keys visible from `id`; the real `_list` answers `404.object-not-found` when there are none. */
export function listTags(store: LampStore, id: string): string[] {
  const keys = new Set<string>();
  for (const owner of tagOwners(store, id)) {
    for (const tag of store.tags.values()) {
      if (tag.parent === owner.parent && tag.target === owner.target) keys.add(tag.key);
    }
  }
  if (keys.size === 0) throw new LampError('404.object-not-found');
  return [...keys];
}
