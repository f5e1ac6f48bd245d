// `pnpm fitlamp enroll …`: enrollment links for a list of participants, from the command line;
// `pnpm fitlamp rotate-keys`: every stored token re-encrypted under TOKEN_ENCRYPTION_KEY.
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parse as parseCsv } from 'csv-parse/sync';
import { stringify as stringifyCsv } from 'csv-stringify/sync';
import { createTokenCipher, parseEncryptionKey } from '@fitlamp/crypto';
import { createDb, findParticipantsNeedingReconsent, insertCoordinator } from '@fitlamp/db';
import { rotateKeys } from './rotate-keys.ts';
import { createLampClient } from '@fitlamp/lamp';
import { ConfigError } from '@fitlamp/runtime';
import { hashCoordinatorToken, issueCoordinatorToken } from './admin-auth.ts';
import { EnrollmentError, issueEnrollment, PARTICIPANT_ID } from './enrollment.ts';
import { loadGatewayEnv, type GatewayEnv } from './env.ts';
import { createProviders } from '@fitlamp/provider-registry';

const HELP = `Usage:
  pnpm fitlamp enroll [options] <participant-id>...
  pnpm fitlamp enroll [options] --csv participants.csv
  pnpm fitlamp enroll --provider google-health --needs-reconsent
  pnpm fitlamp coordinator add <name> --study <study-id> [--study <study-id>...]
  pnpm fitlamp rotate-keys

Creates an enrollment link for each participant: the same signed, expiring link as
POST /admin/enrollments. Each participant is first checked in mindLAMP (GET /participant/{id}
with the researcher credential); an unknown one gets no link and nothing is stored.

Options:
  --provider <name>         fitbit (default) or google-health
  --expires-in-hours <n>    how long links stay valid (default: ENROLLMENT_TTL_HOURS, 336 = 14 days)
  --csv <file>              read participant ids from the first column of a CSV file;
                            a header row (participant_id, id, ...) and blank lines are skipped
  --needs-reconsent         every participant whose legacy Fitbit connection answered 410 Gone
                            and who has not re-consented yet (use with --provider google-health)
  -h, --help                show this help

It reads the gateway's environment (the same .env: DATABASE_URL, LAMP_API_URL, LAMP_ACCESS_KEY,
LAMP_SECRET_KEY, ENROLLMENT_SECRET, PUBLIC_BASE_URL, ...) and works directly against Postgres
and mindLAMP: the gateway need not be running, but must use the same ENROLLMENT_SECRET.

Output: CSV on stdout, one line per participant: participant_id,url,expires_at
Problems go to stderr, one line per participant; the exit code is 1 if any participant failed.

coordinator add: issues a sign-in for a study coordinator who sees only the named mindLAMP
studies' participants, on every admin route, export and the dashboard (HTTP Basic: the name as
user, the token as password). The token is printed once; only its hash is stored.

Examples:
  pnpm fitlamp enroll U123 U456 > links.csv
  pnpm fitlamp coordinator add ana --study S0000000001
  pnpm fitlamp enroll --provider google-health --needs-reconsent > reconsent-links.csv
`;

export interface CliIo {
  env: Record<string, string | undefined>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const HEADER_CELLS = new Set(['participant_id', 'participantid', 'participant', 'id', 'user_id', 'userid']);

/**
 * Participant ids from CSV text: the first cell of each row (quoted cells may hold commas, quotes
 * and line breaks), header and blank or `#` lines skipped. Cells are separated by `,`, `;` or tab.
 */
export function participantIdsFromCsv(text: string): string[] {
  const rows: string[][] = parseCsv(text, {
    delimiter: [',', ';', '\t'],
    relax_column_count: true,
    skip_empty_lines: true,
    comment: '#',
    comment_no_infix: true,
    trim: true,
    bom: true,
  });
  const ids: string[] = [];
  rows.forEach((row, index) => {
    const cell = (row[0] ?? '').trim();
    if (cell === '') return;
    if (index === 0 && HEADER_CELLS.has(cell.toLowerCase())) return;
    ids.push(cell);
  });
  return ids;
}

/** Runs the CLI; answers the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        provider: { type: 'string', default: 'fitbit' },
        'expires-in-hours': { type: 'string' },
        csv: { type: 'string' },
        'needs-reconsent': { type: 'boolean' },
        study: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    io.stderr(`fitlamp: ${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  const [command, ...ids] = parsed.positionals;
  if (parsed.values.help || command === undefined || command === 'help') {
    io.stdout(HELP);
    return parsed.values.help || command === 'help' ? 0 : 2;
  }
  if (command === 'coordinator') return addCoordinator(ids, parsed.values.study ?? [], io);
  if (command === 'rotate-keys') return runRotateKeys(io);
  if (command !== 'enroll') {
    io.stderr(`fitlamp: unknown command "${command}" (known: enroll, coordinator, rotate-keys)\n\n${HELP}`);
    return 2;
  }
  const provider = parsed.values.provider;
  if (provider !== 'fitbit' && provider !== 'google-health') {
    io.stderr(`fitlamp: --provider must be fitbit or google-health, not "${provider}"\n`);
    return 2;
  }
  let expiresInHours: number | undefined;
  if (parsed.values['expires-in-hours'] !== undefined) {
    expiresInHours = Number(parsed.values['expires-in-hours']);
    if (!Number.isInteger(expiresInHours) || expiresInHours < 1 || expiresInHours > 24 * 365) {
      io.stderr('fitlamp: --expires-in-hours must be a whole number of hours between 1 and 8760\n');
      return 2;
    }
  }
  if (parsed.values.csv !== undefined) {
    let text: string;
    try {
      text = await readFile(parsed.values.csv, 'utf8');
    } catch (error) {
      io.stderr(`fitlamp: cannot read ${parsed.values.csv}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}\n`);
      return 2;
    }
    try {
      ids.push(...participantIdsFromCsv(text));
    } catch (error) {
      // csv-parse says where: "Quote Not Closed: the parsing is finished with an opening quote at line 3".
      io.stderr(`fitlamp: ${parsed.values.csv} is not valid CSV: ${(error as Error).message}\n`);
      return 2;
    }
  }
  const bulk = parsed.values['needs-reconsent'] === true;
  const participants = [...new Set(ids)];
  if (participants.length === 0 && !bulk) {
    io.stderr('fitlamp: name at least one participant id, or --csv <file>\n');
    return 2;
  }
  const malformed = participants.filter((id) => !PARTICIPANT_ID.test(id));
  if (malformed.length > 0) {
    io.stderr(`fitlamp: not a participant id: ${malformed.map((id) => JSON.stringify(id)).join(', ')}\n`);
    return 2;
  }

  const env = configOrReport(io);
  if (!env) return 2;
  if (!createProviders(env)[provider]) {
    io.stderr(`fitlamp: provider "${provider}" is not configured (set its client id and secret)\n`);
    return 2;
  }

  const db = createDb(env.DATABASE_URL, { max: 2, applicationName: 'fitlamp-cli' });
  const lamp = createLampClient({ baseUrl: env.LAMP_API_URL, accessKey: env.LAMP_ACCESS_KEY, secretKey: env.LAMP_SECRET_KEY, timeoutMs: 10_000 });
  let failures = 0;
  try {
    // The participants waiting for re-consent are read from the database (reconsent.ts).
    if (bulk) for (const id of await findParticipantsNeedingReconsent(db)) if (!participants.includes(id)) participants.push(id);
    io.stdout('participant_id,url,expires_at\n');
    for (const participantId of participants) {
      try {
        const issued = await issueEnrollment(
          { db, lamp, enrollmentSecret: env.ENROLLMENT_SECRET, publicBaseUrl: env.PUBLIC_BASE_URL, defaultTtlHours: env.ENROLLMENT_TTL_HOURS },
          { participantId, provider, expiresInHours },
        );
        io.stdout(stringifyCsv([[participantId, issued.url, issued.expiresAt]]));
        if (issued.warning) io.stderr(`${participantId}: warning: ${issued.warning}\n`);
      } catch (error) {
        failures += 1;
        const message = error instanceof EnrollmentError ? error.message : `failed: ${(error as Error).message}`;
        io.stderr(`${participantId}: ${message}\n`);
      }
    }
  } finally {
    await lamp.close();
    await db.destroy();
  }
  if (failures > 0) io.stderr(`fitlamp: ${failures} of ${participants.length} participants got no link\n`);
  return failures > 0 ? 1 : 0;
}

const COORDINATOR_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;
const STUDY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** `coordinator add <name> --study S…`: stores the hashed token, prints the sign-in once. */
async function addCoordinator(args: string[], studies: string[], io: CliIo): Promise<number> {
  const [sub, name, ...extra] = args;
  if (sub !== 'add' || name === undefined || extra.length > 0) {
    io.stderr(`fitlamp: usage: pnpm fitlamp coordinator add <name> --study <study-id> [--study ...]\n`);
    return 2;
  }
  if (!COORDINATOR_NAME.test(name)) {
    io.stderr(`fitlamp: "${name}" is not a coordinator name: letters, digits, ".", "_", "@" or "-", up to 128, no ":"\n`);
    return 2;
  }
  const studyIds = [...new Set(studies)];
  if (studyIds.length === 0) {
    io.stderr('fitlamp: name at least one study with --study <study-id>\n');
    return 2;
  }
  const bad = studyIds.find((s) => !STUDY_ID.test(s));
  if (bad !== undefined) {
    io.stderr(`fitlamp: "${bad}" is not a mindLAMP study id\n`);
    return 2;
  }
  const env = configOrReport(io);
  if (!env) return 2;
  const db = createDb(env.DATABASE_URL, { max: 1, applicationName: 'fitlamp-cli' });
  try {
    const token = issueCoordinatorToken();
    if (!(await insertCoordinator(db, { name, tokenHash: hashCoordinatorToken(token), studyIds }))) {
      io.stderr(`fitlamp: a coordinator named "${name}" exists already; pick another name\n`);
      return 1;
    }
    io.stdout(`Coordinator "${name}" may see studies ${studyIds.join(', ')}.\nSign in to ${env.PUBLIC_BASE_URL.replace(/\/+$/, '')}/admin with\n  user:     ${name}\n  password: ${token}\nThe token is shown only now; fitlamp keeps its hash.\n`);
    return 0;
  } finally {
    await db.destroy();
  }
}

/** `pnpm fitlamp rotate-keys`: every connection's tokens under TOKEN_ENCRYPTION_KEY, with progress on stderr. */
async function runRotateKeys(io: CliIo): Promise<number> {
  const env = configOrReport(io);
  if (!env) return 2;
  const previous = env.TOKEN_ENCRYPTION_KEY_PREVIOUS ? [parseEncryptionKey(env.TOKEN_ENCRYPTION_KEY_PREVIOUS, 'TOKEN_ENCRYPTION_KEY_PREVIOUS')] : [];
  const cipher = createTokenCipher(parseEncryptionKey(env.TOKEN_ENCRYPTION_KEY), previous);
  const db = createDb(env.DATABASE_URL, { max: 2, applicationName: 'fitlamp-cli' });
  try {
    const report = await rotateKeys(db, cipher, (r) => io.stderr(`rotate-keys: ${r.seen} connections read, ${r.rewritten} re-encrypted\n`));
    io.stderr(
      `rotate-keys: done: ${report.seen} connections, ${report.rewritten} re-encrypted; every token is under key "${cipher.activeKeyId}". ` +
        `TOKEN_ENCRYPTION_KEY_PREVIOUS can now be removed safely.\n`,
    );
    return 0;
  } finally {
    await db.destroy();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await runCli(process.argv.slice(2), {
    env: process.env,
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
  });
}

/** The gateway's configuration, or undefined after reporting what is wrong with it on stderr. */
function configOrReport(io: CliIo): GatewayEnv | undefined {
  try {
    return loadGatewayEnv(io.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      io.stderr(`fitlamp: configuration error: ${error.message}\n`);
      return undefined;
    }
    throw error;
  }
}
