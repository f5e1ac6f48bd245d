import { DATA_TYPES, type DataTypeInfo } from './catalogue.ts';
import { invalid } from './errors.ts';

/**
 * The AIP-160 subset `list`/`reconcile` accept (google-health-api §3.3; Discovery `list.filter`):
 * `{snake_type}.{member} (>=|<) "literal"` joined by `AND` (sleep also `OR`, AND binding tighter).
 * Each mistake maps to its catalogue reason (§5.2).
 */

/** What a filter member compares: an instant (ms), a civil date-time string, or a date string. */
export type MemberKind = 'timestamp' | 'civil' | 'date';

export interface Restriction {
  /** Member after the prefix, e.g. `interval.start_time`. */
  member: string;
  kind: MemberKind;
  op: '>=' | '<';
  /** ms for timestamps; `YYYY-MM-DDTHH:mm:ss` for civil; `YYYY-MM-DD` for dates. */
  value: number | string;
}

/** A parsed filter: OR of AND-groups (one group unless sleep uses OR). */
export interface Filter {
  groups: Restriction[][];
}

/** Members each time shape accepts. ECG allows only `>=`. */
function membersOf(type: DataTypeInfo): Record<string, MemberKind> {
  switch (type.shape) {
    case 'interval':
      return { 'interval.start_time': 'timestamp', 'interval.civil_start_time': 'civil' };
    case 'sample':
      return { 'sample_time.physical_time': 'timestamp', 'sample_time.civil_time': 'civil' };
    case 'daily':
      return { date: 'date' };
    case 'session':
      return { 'interval.civil_start_time': 'civil' };
    case 'sleep':
      return { 'interval.end_time': 'timestamp', 'interval.civil_end_time': 'civil' };
    case 'ecg':
      return { 'interval.start_time': 'timestamp' };
    default:
      return {};
  }
}

type Token = { kind: 'ident' | 'op' | 'string' | 'word' | 'other'; text: string; pos: number };

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i] ?? '';
    if (/\s/.test(c)) {
      i += 1;
      continue;
    }
    if (c === '"' || c === "'") {
      const end = src.indexOf(c, i + 1);
      if (end < 0) throw invalid('INVALID_DATA_POINT_FILTER_SYNTAX', `Invalid filter: unterminated string literal at position ${i}.`);
      out.push({ kind: 'string', text: src.slice(i + 1, end), pos: i });
      i = end + 1;
      continue;
    }
    const op = /^(>=|<=|!=|>|<|=|:)/.exec(src.slice(i));
    if (op) {
      out.push({ kind: 'op', text: op[0], pos: i });
      i += op[0].length;
      continue;
    }
    const word = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(src.slice(i));
    if (word) {
      const text = word[0];
      out.push({ kind: text === 'AND' || text === 'OR' || text === 'NOT' ? 'word' : 'ident', text, pos: i });
      i += text.length;
      continue;
    }
    const bare = /^[^\s"'<>=!:()]+/.exec(src.slice(i));
    if (bare) {
      out.push({ kind: 'other', text: bare[0], pos: i });
      i += bare[0].length;
      continue;
    }
    out.push({ kind: 'other', text: c, pos: i });
    i += 1;
  }
  return out;
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const CIVIL = /^(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}:\d{2})?$/;

function validDate(s: string): boolean {
  const t = Date.parse(`${s}T00:00:00Z`);
  return Number.isFinite(t) && new Date(t).toISOString().slice(0, 10) === s;
}

function literal(kind: MemberKind, raw: string, member: string): number | string {
  if (kind === 'timestamp') {
    const t = Date.parse(raw);
    if (!TIMESTAMP.test(raw) || !Number.isFinite(t) || !validDate(raw.slice(0, 10))) {
      throw invalid('INVALID_DATA_POINT_FILTER_TIMESTAMP_FORMAT', `Invalid filter: "${raw}" is not an RFC-3339 timestamp (member ${member}).`);
    }
    return t;
  }
  if (kind === 'date') {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(raw) || !validDate(raw)) {
      throw invalid('INVALID_DATA_POINT_FILTER_CIVIL_DATE_TIME_FORMAT', `Invalid filter: "${raw}" is not a YYYY-MM-DD date (member ${member}).`);
    }
    return raw;
  }
  const m = CIVIL.exec(raw);
  const time = m?.[2];
  if (!m || !validDate(m[1] ?? '') || (time && !/^T([01]\d|2[0-3]):[0-5]\d:[0-5]\d$/.test(time))) {
    throw invalid('INVALID_DATA_POINT_FILTER_CIVIL_DATE_TIME_FORMAT', `Invalid filter: "${raw}" is not a YYYY-MM-DD[THH:mm:ss] civil date-time (member ${member}).`);
  }
  return `${m[1]}${time ?? 'T00:00:00'}`;
}

/** Parses `filter` for data type `type`; undefined/blank = no filter. Throws ApiError(400). */
export function parseFilter(type: DataTypeInfo, raw: string | undefined): Filter | null {
  if (raw === undefined || raw.trim() === '') return null;
  const tokens = tokenize(raw);
  const members = membersOf(type);
  const groups: Restriction[][] = [[]];
  let i = 0;
  const next = (): Token | undefined => tokens[i++];
  const unexpected = (tok: Token | undefined, expected: string) =>
    tok === undefined
      ? invalid('INVALID_DATA_POINT_FILTER_UNEXPECTED_END_OF_INPUT', `Invalid filter: expected ${expected} but the filter ended.`)
      : invalid('INVALID_DATA_POINT_FILTER_UNEXPECTED_TOKEN', `Invalid filter: unexpected "${tok.text}" at position ${tok.pos}; expected ${expected}.`);
  for (;;) {
    const ident = next();
    if (ident?.kind !== 'ident') throw unexpected(ident, 'a field such as ' + `${type.prefix}.${Object.keys(members)[0] ?? 'interval.start_time'}`);
    const dot = ident.text.indexOf('.');
    const prefix = dot < 0 ? ident.text : ident.text.slice(0, dot);
    const member = dot < 0 ? '' : ident.text.slice(dot + 1);
    if (prefix !== type.prefix) {
      if (DATA_TYPES.some((d) => d.prefix === prefix)) {
        throw invalid('INVALID_DATA_POINT_FILTER_COLLECTION_MISMATCH', `Invalid filter: "${prefix}" does not match the data type of the collection (${type.path}); use the snake_case prefix "${type.prefix}".`);
      }
      throw invalid('INVALID_DATA_POINT_FILTER_DATA_TYPE_RESTRICTION', `Invalid filter: "${ident.text}" must start with the snake_case data type "${type.prefix}".`);
    }
    const kind = members[member];
    if (kind === undefined) {
      const allowed = Object.keys(members).map((m) => `${type.prefix}.${m}`);
      throw invalid(
        'INVALID_DATA_POINT_FILTER_DATA_TYPE_MEMBER',
        allowed.length > 0 ? `Invalid filter: "${ident.text}" is not supported for ${type.path}; supported: ${allowed.join(', ')}.` : `Invalid filter: filtering is not supported for ${type.path}.`,
      );
    }
    const op = next();
    if (op?.kind !== 'op') throw unexpected(op, 'a comparison operator (>= or <)');
    if (op.text !== '>=' && op.text !== '<') {
      throw invalid('INVALID_DATA_POINT_FILTER_RESTRICTION_COMPARATOR', `Invalid filter: operator "${op.text}" is not supported; use >= or <.`);
    }
    if (type.shape === 'ecg' && op.text !== '>=') {
      throw invalid('INVALID_DATA_POINT_FILTER_RESTRICTION_COMPARATOR', 'Invalid filter: only >= is supported for electrocardiogram.');
    }
    const arg = next();
    if (arg === undefined) throw unexpected(arg, 'a quoted literal');
    if (arg.kind !== 'string') throw invalid('INVALID_DATA_POINT_FILTER_RESTRICTION_ARGUMENT', `Invalid filter: "${arg.text}" must be a quoted string literal.`);
    groups[groups.length - 1]?.push({ member, kind, op: op.text, value: literal(kind, arg.text, ident.text) });
    const join = next();
    if (join === undefined) break;
    if (join.kind !== 'word' || join.text === 'NOT') throw unexpected(join, 'AND or end of filter');
    if (join.text === 'OR') {
      if (type.shape !== 'sleep') throw invalid('INVALID_DATA_POINT_FILTER_EXPRESSION_STRUCTURE', `Invalid filter: OR is supported only for sleep; ${type.path} supports AND.`);
      groups.push([]);
    }
  }
  const used = new Set(groups.flat().map((r) => r.member));
  if (used.size > 1) throw invalid('INVALID_DATA_POINT_FILTER_MIXED_TIME_RESTRICTIONS', `Invalid filter: do not mix ${[...used].map((m) => `${type.prefix}.${m}`).join(' and ')}.`);
  return { groups };
}

/** A point's values for each filter member. */
export type MemberValues = Record<string, number | string>;

/** Whether a point passes the filter. */
export function matches(filter: Filter | null, values: MemberValues): boolean {
  if (!filter) return true;
  return filter.groups.some((g) =>
    g.every((r) => {
      const v = values[r.member];
      if (v === undefined) return false;
      return r.op === '>=' ? v >= r.value : v < r.value;
    }),
  );
}

const DAY = 86_400_000;
const SLACK = 15 * 3_600_000; // civil literals: UTC offsets span −12 h … +14 h

/** The physical span a filter can touch, for scanning the world (loose; `matches` is exact). */
export function physicalSpan(filter: Filter | null): { from: number; to: number } {
  if (!filter) return { from: -Infinity, to: Infinity };
  let from = Infinity;
  let to = -Infinity;
  for (const g of filter.groups) {
    let lo = -Infinity;
    let hi = Infinity;
    for (const r of g) {
      const ms = typeof r.value === 'number' ? r.value : Date.parse(`${r.value.length === 10 ? `${r.value}T00:00:00` : r.value}Z`);
      const slack = typeof r.value === 'number' ? 0 : r.kind === 'date' ? SLACK + DAY : SLACK;
      if (r.op === '>=') lo = Math.max(lo, ms - slack);
      else hi = Math.min(hi, ms + slack);
    }
    from = Math.min(from, lo);
    to = Math.max(to, hi);
  }
  return { from, to };
}
