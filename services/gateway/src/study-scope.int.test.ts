import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedBatch, seedLedger, seedParticipant, seedWear } from '@fitlamp/testing';
import { runCli } from './cli.ts';
import { startTestGateway, type TestGateway } from '../test/gateway.ts';

// Coordinators scoped to studies, end to end: issued by the CLI, signing in with HTTP Basic, and
// never seeing another study's participant by any admin route, export or page.
describe('per-study coordinator access', () => {
  let gw: TestGateway;
  let ana: { authorization: string };
  let otherBatch: string;
  const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
  const day = new Date().toISOString().slice(0, 10);

  async function cli(argv: string[]) {
    let stdout = '';
    let stderr = '';
    const env = Object.fromEntries(Object.entries(gw.env).map(([k, v]) => [k, v === undefined ? undefined : String(v)]));
    const code = await runCli(argv, { env, stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) });
    return { code, stdout, stderr };
  }

  beforeAll(async () => {
    gw = await startTestGateway({ participants: ['U1001', 'U1002'] });
    gw.lampSim.addParticipant({ id: 'U2001', studyId: 'S2' });
    // Mine (S1) and someone else's (S2), with days, wear and a parked batch each.
    for (const [id, study] of [['MINE1', 'S1'], ['THEIRS1', 'S2']] as const) {
      await seedParticipant(gw.db, id, { status: 'connected', streams: ['steps'], studyId: study });
      await seedLedger(gw.db, id, [{ stream: 'steps', day, status: 'failed', reason: `${id} reason` }]);
      await seedWear(gw.db, id, day, 30);
    }
    await seedBatch(gw.db, 'MINE1', { status: 'parked', day });
    otherBatch = (await seedBatch(gw.db, 'THEIRS1', { status: 'parked', day })).batchId;

    const issued = await cli(['coordinator', 'add', 'ana', '--study', 'S1']);
    expect(issued.code).toBe(0);
    const token = /password: (\S+)/.exec(issued.stdout)?.[1];
    expect(token).toBeDefined();
    ana = basic('ana', token!);
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('stores only a hash of the token, and refuses a taken name or a missing study', async () => {
    const row = await gw.db.selectFrom('coordinators').selectAll().where('name', '=', 'ana').executeTakeFirstOrThrow();
    expect(row.study_ids).toEqual(['S1']);
    expect(row.token_hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(row.token_hash).not.toContain(ana.authorization);
    expect((await cli(['coordinator', 'add', 'ana', '--study', 'S2'])).code).toBe(1);
    expect((await cli(['coordinator', 'add', 'bo'])).stderr).toContain('name at least one study');
    expect((await cli(['coordinator', 'add', 'b:o', '--study', 'S1'])).code).toBe(2);
    expect(await gw.db.selectFrom('coordinators').select('name').execute()).toEqual([{ name: 'ana' }]);
  });

  it('signs in with name and token; a wrong token, or the token under another name, is refused', async () => {
    expect((await gw.inject('/admin/participants', { headers: ana })).status).toBe(200);
    const token = Buffer.from(ana.authorization.slice(6), 'base64').toString().split(':')[1]!;
    expect((await gw.inject('/admin/participants', { headers: basic('ana', `${token}x`) })).status).toBe(401);
    expect((await gw.inject('/admin/participants', { headers: basic('bo', token) })).status).toBe(401);
    expect((await gw.inject('/admin/participants', { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
  });

  it('never shows another study’s participant, by any route', async () => {
    const texts: Array<[string, string]> = [];
    const read = async (path: string, headers: Record<string, string> = {}) => {
      const res = await gw.inject(path, { headers: { ...ana, ...headers } });
      const text = await res.text();
      texts.push([path, text]);
      return { status: res.status, text };
    };
    // Lists, pages and exports show mine...
    for (const path of ['/admin/participants', '/admin', '/admin/export/participants.csv', `/admin/export/compliance.csv?from=${day}&to=${day}`]) {
      const { status, text } = await read(path);
      expect(status, path).toBe(200);
      expect(text, path).toContain('MINE1');
    }
    expect((await read('/admin/deliveries', { accept: 'text/html' })).text).toContain('MINE1');
    expect((await read('/admin/deliveries')).text).toContain('MINE1');
    // ...and another study's participant is unknown, filtered or not.
    for (const path of ['/admin/participants?status=connected', '/admin?study=S2', '/admin?sort=participant', '/admin/deliveries?participantId=THEIRS1']) {
      await read(path);
    }
    expect((await read('/admin/participants/THEIRS1')).status).toBe(404);
    expect((await read('/admin/participants/THEIRS1?day=' + day)).status).toBe(404);
    expect((await read(`/admin/participants/THEIRS1/days?from=${day}&to=${day}`)).status).toBe(404);
    for (const [path, text] of texts) {
      // A 404 repeats the id it was asked about, and nothing else of it.
      if (!path.includes('THEIRS1')) expect(text, path).not.toContain('THEIRS1');
      expect(text, path).not.toContain('THEIRS1 reason');
      expect(text, path).not.toMatch(/\bS2\b/);
    }

    // Acting on them changes nothing.
    const retried = await gw.inject(`/admin/deliveries/${otherBatch}/retry`, { method: 'POST', headers: ana });
    expect(retried.status).toBe(404);
    const batch = await gw.db.selectFrom('delivery_batches').select('status').where('id', '=', otherBatch).executeTakeFirstOrThrow();
    expect(batch.status).toBe('parked');
    const removed = await gw.inject('/admin/participants/THEIRS1/connection?force=true', { method: 'DELETE', headers: ana });
    expect(removed.status).toBe(404);
    const connection = await gw.db.selectFrom('provider_connections').select('status').where('participant_id', '=', 'THEIRS1').executeTakeFirstOrThrow();
    expect(connection.status).toBe('connected');
  });

  it('enrolls only participants of their studies, and records each participant’s study from mindLAMP', async () => {
    const enroll = (participantId: string, headers: Record<string, string>) =>
      gw.inject('/admin/enrollments', { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ participantId, provider: 'fitbit' }) });
    expect((await enroll('U1001', ana)).status).toBe(201);
    const refused = await enroll('U2001', ana);
    expect(refused.status).toBe(404);
    expect(await gw.db.selectFrom('participants').select('id').where('id', '=', 'U2001').executeTakeFirst()).toBeUndefined();
    const bulk = await gw.inject('/admin/enrollments', {
      method: 'POST',
      headers: { ...ana, 'content-type': 'application/json' },
      body: JSON.stringify({ provider: 'fitbit', status: 'needs_reconsent' }),
    });
    expect(bulk.status).toBe(403);
    // The global admin enrolls anyone; each participant gets its mindLAMP study.
    expect((await enroll('U2001', gw.admin)).status).toBe(201);
    const studies = await gw.db.selectFrom('participants').select(['id', 'study_id']).where('id', 'in', ['U1001', 'U2001']).orderBy('id').execute();
    expect(studies).toEqual([
      { id: 'U1001', study_id: 'S1' },
      { id: 'U2001', study_id: 'S2' },
    ]);
  });

  it('keeps Bull Board for the global admin', async () => {
    expect((await gw.inject('/admin/queues', { headers: ana })).status).toBe(403);
    expect((await gw.inject('/admin/queues', { headers: gw.admin })).status).toBe(200);
  });
});
