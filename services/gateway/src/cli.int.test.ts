import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createTokenCipher, parseEncryptionKey } from '@fitlamp/crypto';
import { connectionTokenPlace, saveConnectedTokens, upsertParticipant } from '@fitlamp/db';
import { repoRoot, storedToken } from '@fitlamp/testing';
import { participantIdsFromCsv, runCli } from './cli.ts';
import { startTestGateway, type TestGateway } from '../test/gateway.ts';

describe('pnpm fitlamp enroll', () => {
  let gw: TestGateway;
  let dir: string;
  beforeAll(async () => {
    [gw, dir] = await Promise.all([startTestGateway({ participants: ['U3001', 'U3002', 'U3003'] }), mkdtemp(join(tmpdir(), 'fitlamp-cli-'))]);
  });
  afterAll(async () => {
    await gw?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function run(argv: string[]) {
    let stdout = '';
    let stderr = '';
    const env = Object.fromEntries(Object.entries(gw.env).map(([k, v]) => [k, v === undefined ? undefined : String(v)]));
    const code = await runCli(argv, { env, stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) });
    return { code, stdout, stderr };
  }

  it('prints one working link per participant, as CSV', async () => {
    const { code, stdout, stderr } = await run(['enroll', 'U3001', 'U3002', 'U3001', '--expires-in-hours', '48']);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toBe('participant_id,url,expires_at');
    expect(lines.slice(1).map((l) => l.split(',')[0])).toEqual(['U3001', 'U3002']);
    for (const line of lines.slice(1)) {
      const [id, url, expiresAt] = line.split(',') as [string, string, string];
      expect(Date.parse(expiresAt) - Date.now()).toBeGreaterThan(47.9 * 3_600_000);
      const page = await fetch(url);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain(id);
    }
  });

  it('reads a CSV, skips the header, and reports unknown participants without a link (exit 1)', async () => {
    const file = join(dir, 'participants.csv');
    await writeFile(file, 'participant_id,name\nU3003,Ann\n\n"U9999",Bob\n');
    const { code, stdout, stderr } = await run(['enroll', '--csv', file]);
    expect(code).toBe(1);
    expect(stdout.trim().split('\n').slice(1).map((l) => l.split(',')[0])).toEqual(['U3003']);
    expect(stderr).toContain('U9999: mindLAMP has no participant "U9999"');
    expect(stderr).toContain('1 of 2 participants got no link');
    expect(await gw.db.selectFrom('participants').select('id').where('id', '=', 'U9999').executeTakeFirst()).toBeUndefined();
  });

  it('--needs-reconsent issues links for every participant whose legacy API answered 410', async () => {
    await gw.db.insertInto('participants').values([{ id: 'U3002' }, { id: 'U3003' }]).onConflict((oc) => oc.doNothing()).execute();
    await gw.db
      .insertInto('provider_connections')
      .values([
        { participant_id: 'U3002', provider: 'fitbit', status: 'needs_reconsent', status_reason: '410 Gone' },
        { participant_id: 'U3003', provider: 'fitbit', status: 'connected' },
      ])
      .onConflict((oc) => oc.columns(['participant_id', 'provider']).doUpdateSet((eb) => ({ status: eb.ref('excluded.status') })))
      .execute();
    const { code, stdout, stderr } = await run(['enroll', '--provider', 'fitbit', '--needs-reconsent']);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout.trim().split('\n').slice(1).map((l) => l.split(',')[0])).toEqual(['U3002']);
  });

  it('explains usage mistakes without touching anything', async () => {
    expect((await run(['enroll'])).code).toBe(2);
    expect((await run(['enroll', 'U 1'])).stderr).toContain('not a participant id');
    expect((await run(['enroll', 'U3001', '--provider', 'garmin'])).code).toBe(2);
    expect((await run(['enroll', 'U3001', '--expires-in-hours', '0'])).code).toBe(2);
    expect((await run(['frobnicate'])).stderr).toContain('unknown command');
    expect((await run(['enroll', '--csv', join(dir, 'missing.csv')])).stderr).toContain('ENOENT');
    expect(participantIdsFromCsv('id\r\nU1\r\n# comment\r\nU2;x\r\n')).toEqual(['U1', 'U2']);
    // Quoted cells may hold the separator, quotes and line breaks; the id is the first cell.
    expect(participantIdsFromCsv('participant_id,note\n"U3","likes ""tea"", coffee"\nU4,"two\nlines"\n"U5"\n')).toEqual(['U3', 'U4', 'U5']);
    const broken = join(dir, 'broken.csv');
    await writeFile(broken, 'id\nU1,"never closed\n');
    const bad = await run(['enroll', '--csv', broken]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/broken\.csv is not valid CSV: .*quote/i);
  });

  it('runs as the root script and documents itself', async () => {
    const { stdout } = await promisify(execFile)('pnpm', ['--silent', 'fitlamp', 'enroll', '--help'], { cwd: repoRoot, timeout: 15_000 });
    expect(stdout).toContain('pnpm fitlamp enroll [options] <participant-id>...');
    expect(stdout).toContain('works directly against Postgres');
  });
});

describe('pnpm fitlamp rotate-keys', () => {
  it('re-encrypts every connection under the active key, with progress, after which the previous key can go', async () => {
    const gw = await startTestGateway({ participants: ['U3101'] });
    try {
      const oldSetting = `t0:${randomBytes(32).toString('base64')}`;
      const old = createTokenCipher(parseEncryptionKey(oldSetting));
      for (const participantId of ['U3101', 'U3102']) {
        await upsertParticipant(gw.db, participantId);
        await saveConnectedTokens(gw.db, {
          participantId,
          provider: 'fitbit',
          providerUserId: `ACC${participantId}`,
          accessTokenEnc: old.encrypt(`access-${participantId}`, connectionTokenPlace(participantId, 'access_token_enc')),
          refreshTokenEnc: old.encrypt(`refresh-${participantId}`, connectionTokenPlace(participantId, 'refresh_token_enc')),
          keyId: 't0',
          accessTokenExpiresAt: new Date(Date.now() + 3_600_000),
          refreshTokenExpiresAt: null,
          scopes: ['activity'],
        });
      }
      let stderr = '';
      const env = Object.fromEntries(Object.entries(gw.env).map(([k, v]) => [k, v === undefined ? undefined : String(v)]));
      const code = await runCli(['rotate-keys'], { env: { ...env, TOKEN_ENCRYPTION_KEY_PREVIOUS: oldSetting }, stdout: () => {}, stderr: (t) => void (stderr += t) });
      expect(code).toBe(0);
      expect(stderr).toContain('rotate-keys: 2 connections read, 2 re-encrypted');
      expect(stderr).toContain('TOKEN_ENCRYPTION_KEY_PREVIOUS can now be removed safely');
      // Readable with the active key alone.
      const rows = await gw.db.selectFrom('provider_connections').selectAll().orderBy('participant_id').execute();
      for (const row of rows) {
        expect(row.key_id).toBe(gw.cipher.activeKeyId);
        expect(storedToken(gw.cipher, row, 'access_token_enc')).toBe(`access-${row.participant_id}`);
        expect(storedToken(gw.cipher, row, 'refresh_token_enc')).toBe(`refresh-${row.participant_id}`);
      }
      expect(stderr).not.toContain('access-U31');
      // A second run finds nothing to do.
      stderr = '';
      expect(await runCli(['rotate-keys'], { env, stdout: () => {}, stderr: (t) => void (stderr += t) })).toBe(0);
      expect(stderr).toContain('2 connections, 0 re-encrypted');
    } finally {
      await gw.close();
    }
  });
});
