import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { jobIdFor } from '@fitlamp/queues';
import { batchStatus, recordsOf, seedBatch, seedParticipant } from '@fitlamp/testing';
import { buildTestGateway, type GatewayUnderTest } from '../test/gateway.ts';

interface Delivery {
  batchId: string;
  participantId: string;
  status: string;
  reason: string | null;
  eventCount: number;
  from: string;
  to: string;
  createdAt: string;
  updatedAt: string;
  retryUrl: string | null;
}
interface ErrorBody {
  error: string;
  message: string;
  status?: string;
  issues?: Array<{ path: string; message: string }>;
}

// Parked deliveries and their retry through app.inject, on real Postgres and Redis.
describe('parked deliveries', () => {
  let gw: GatewayUnderTest;
  const get = (path: string) => gw.inject(path, { headers: gw.admin });
  const retry = (batchId: string, init: { headers?: Record<string, string>; body?: string } = {}) =>
    gw.inject(`/admin/deliveries/${batchId}/retry`, {
      method: 'POST',
      headers: { ...gw.admin, ...init.headers },
      ...(init.body !== undefined ? { body: init.body } : {}),
    });
  const form = (fields: Record<string, string>) => ({
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });

  beforeAll(async () => {
    gw = await buildTestGateway();
    await seedParticipant(gw.db, 'D1', { status: 'connected' });
    await seedParticipant(gw.db, 'D2', { status: 'connected' });
  });
  beforeEach(async () => {
    await Promise.all(gw.queues.deliver.map((q) => q.obliterate({ force: true })));
  });
  afterAll(async () => {
    await gw?.close();
  });

  describe('GET /admin/deliveries', () => {
    let parked1: string;
    let parked2: string;
    beforeAll(async () => {
      parked1 = (await seedBatch(gw.db, 'D1', { status: 'parked', count: 4, day: '2026-03-01', reason: '404 not_found: participant D1 does not exist' })).batchId;
      parked2 = (await seedBatch(gw.db, 'D2', { status: 'parked', count: 2, day: '2026-03-02' })).batchId;
      await seedBatch(gw.db, 'D1', { status: 'delivered', count: 5 });
    });

    it('lists parked batches only, newest first, with participant, reason, event count, time range and when', async () => {
      const res = await get('/admin/deliveries?status=parked');
      expect(res.status).toBe(200);
      const body = (await res.json()) as { status: string; total: number; deliveries: Delivery[] };
      const mine = body.deliveries.filter((d) => [parked1, parked2].includes(d.batchId));
      expect(body.deliveries.every((d) => d.status === 'parked')).toBe(true);
      expect(mine.map((d) => d.batchId)).toEqual([parked2, parked1]);
      expect(mine[1]).toMatchObject({
        batchId: parked1,
        participantId: 'D1',
        status: 'parked',
        reason: '404 not_found: participant D1 does not exist',
        eventCount: 4,
        from: '2026-03-01T08:00:00.000Z',
        to: '2026-03-01T08:03:00.000Z',
        retryUrl: `/admin/deliveries/${parked1}/retry`,
      });
      expect(Date.parse(mine[1]!.updatedAt)).toBeGreaterThan(Date.now() - 60_000);
    });

    it('defaults to parked, filters by participant and by status', async () => {
      const byDefault = (await (await get('/admin/deliveries')).json()) as { status: string; deliveries: Delivery[] };
      expect(byDefault.status).toBe('parked');
      const d2 = (await (await get('/admin/deliveries?participantId=D2')).json()) as { total: number; deliveries: Delivery[] };
      expect(d2.deliveries.map((d) => d.participantId)).toEqual(['D2']);
      expect(d2.total).toBe(1);
      const delivered = (await (await get('/admin/deliveries?status=delivered&participantId=D1')).json()) as { deliveries: Delivery[] };
      expect(delivered.deliveries).toHaveLength(1);
      expect(delivered.deliveries[0]).toMatchObject({ status: 'delivered', eventCount: 5, retryUrl: null });
    });

    it.each([
      ['status=lost', 'status'],
      ['limit=0', 'limit'],
      ['offset=-1', 'offset'],
      ['participantId=a%20b', 'participantId'],
      ['page=2', ''],
    ])('answers 400 naming the field for ?%s', async (query, path) => {
      const res = await get(`/admin/deliveries?${query}`);
      expect(res.status).toBe(400);
      const body = (await res.json()) as ErrorBody;
      expect(body.issues?.map((i) => i.path)).toContain(path);
    });

    it('needs the admin token', async () => {
      expect((await gw.inject('/admin/deliveries?status=parked')).status).toBe(401);
    });

    it('renders a page for a browser, with Retry buttons, status links and the way back to the overview', async () => {
      const browserAccept = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
      const res = await gw.inject('/admin/deliveries', { headers: { ...gw.admin, accept: browserAccept } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
      const text = await res.text();
      expect(text).toContain('<h1>Deliveries: parked</h1>');
      expect(text).toContain('<a href="/admin" id="overview">Overview</a>');
      const row = new RegExp(`<tr data-batch="${parked1}">([\\s\\S]*?)</tr>`).exec(text)?.[1] ?? '';
      expect(row).toContain('404 not_found: participant D1 does not exist');
      expect(row).toContain(`action="/admin/deliveries/${parked1}/retry"`);
      expect(row).toContain('name="returnTo" value="/admin/deliveries"');
      expect(text).toContain('href="/admin/deliveries?status=delivered"');
      const delivered = await (await gw.inject('/admin/deliveries?status=delivered&participantId=D1', { headers: { ...gw.admin, accept: browserAccept } })).text();
      expect(delivered).toContain('<td>delivered</td>');
      expect(delivered).not.toContain('/retry"');
      // API clients keep their JSON, whether they say so or send curl's */*.
      for (const accept of ['application/json', '*/*']) {
        const json = await gw.inject('/admin/deliveries', { headers: { ...gw.admin, accept } });
        expect(json.headers.get('content-type')).toMatch(/^application\/json/);
        expect(((await json.json()) as { status: string }).status).toBe('parked');
      }
    });
  });

  describe('POST /admin/deliveries/:batchId/retry', () => {
    it('puts a parked batch back: records pending and out of the batch, batch closed, delivery queued', async () => {
      const { batchId, recordIds } = await seedBatch(gw.db, 'D1', { status: 'parked', count: 3 });
      const other = await seedBatch(gw.db, 'D1', { status: 'parked', count: 2 });

      const res = await retry(batchId);
      expect(res.status).toBe(202);
      expect(await res.json()).toMatchObject({
        batchId,
        participantId: 'D1',
        status: 'abandoned',
        recordsRequeued: 3,
        queued: true,
        jobId: jobIdFor('deliver', 'D1'),
      });
      expect(await recordsOf(gw.db, recordIds)).toEqual(recordIds.map((id) => ({ id, status: 'pending', batch_id: null })));
      expect(await batchStatus(gw.db, batchId)).toBe('abandoned');
      // Its reason stays for the record.
      const row = await gw.db.selectFrom('delivery_batches').select('last_error').where('id', '=', batchId).executeTakeFirstOrThrow();
      expect(row.last_error).toMatch(/^403 forbidden/);

      const job = await gw.queues.getJob('deliver', 'D1');
      expect(job?.data).toEqual({ participantId: 'D1', reason: 'manual' });
      expect(await job?.getState()).toBe('waiting');

      // The other parked batch is untouched.
      expect(await batchStatus(gw.db, other.batchId)).toBe('parked');
      expect((await recordsOf(gw.db, other.recordIds)).map((r) => r.status)).toEqual(['parked', 'parked']);
      // And the list no longer shows the retried one.
      const list = (await (await get('/admin/deliveries?participantId=D1')).json()) as { deliveries: Delivery[] };
      expect(list.deliveries.map((d) => d.batchId)).not.toContain(batchId);
      expect(list.deliveries.map((d) => d.batchId)).toContain(other.batchId);
    });

    it('answers 409 for a batch that is not parked, and changes nothing', async () => {
      const { batchId, recordIds } = await seedBatch(gw.db, 'D2', { status: 'parked', count: 2 });
      expect((await retry(batchId)).status).toBe(202);
      await Promise.all(gw.queues.deliver.map((q) => q.obliterate({ force: true })));

      const again = await retry(batchId);
      expect(again.status).toBe(409);
      const body = (await again.json()) as ErrorBody;
      expect(body).toMatchObject({ error: 'batch_not_parked', status: 'abandoned' });
      expect(body.message).toContain('only a parked batch can be retried');
      expect(await gw.queues.getJob('deliver', 'D2')).toBeUndefined();

      const delivered = await seedBatch(gw.db, 'D2', { status: 'delivered', count: 2 });
      const res = await retry(delivered.batchId);
      expect(res.status).toBe(409);
      expect(((await res.json()) as ErrorBody).status).toBe('delivered');
      expect((await recordsOf(gw.db, delivered.recordIds)).map((r) => r.status)).toEqual(['delivered', 'delivered']);
      expect(await batchStatus(gw.db, delivered.batchId)).toBe('delivered');
      expect((await recordsOf(gw.db, recordIds)).map((r) => r.status)).toEqual(['pending', 'pending']);
    });

    it('answers 404 for an unknown batch and 400 for a malformed id', async () => {
      const unknown = await retry('987654321');
      expect(unknown.status).toBe(404);
      expect(await unknown.json()).toMatchObject({ error: 'batch_not_found' });
      for (const bad of ['abc', '0', '1.5', '99999999999999999999']) {
        const res = await retry(bad);
        expect(res.status).toBe(400);
        expect(((await res.json()) as ErrorBody).issues?.map((i) => i.path)).toEqual(['batchId']);
      }
      expect(await gw.queues.getJob('deliver', 'D1')).toBeUndefined();
    });

    it('lets only one of two simultaneous retries of a batch through', async () => {
      const { batchId, recordIds } = await seedBatch(gw.db, 'D1', { status: 'parked', count: 4 });
      const answers = await Promise.all([retry(batchId), retry(batchId), retry(batchId)]);
      expect(answers.map((a) => a.status).sort()).toEqual([202, 409, 409]);
      expect((await recordsOf(gw.db, recordIds)).every((r) => r.status === 'pending')).toBe(true);
    });

    it('needs the admin token', async () => {
      const { batchId, recordIds } = await seedBatch(gw.db, 'D1', { status: 'parked', count: 1 });
      const res = await gw.inject(`/admin/deliveries/${batchId}/retry`, { method: 'POST' });
      expect(res.status).toBe(401);
      expect((await recordsOf(gw.db, recordIds))[0]!.status).toBe('parked');
    });

    describe('from the dashboard form', () => {
      it('redirects back to the page it came from with a notice', async () => {
        const { batchId, recordIds } = await seedBatch(gw.db, 'D1', { status: 'parked', count: 2 });
        const res = await retry(batchId, form({ returnTo: '/admin/participants/D1' }));
        expect(res.status).toBe(303);
        expect(res.headers.get('location')).toBe(`/admin/participants/D1?retried=${batchId}`);
        expect((await recordsOf(gw.db, recordIds)).map((r) => r.status)).toEqual(['pending', 'pending']);
        expect(await gw.queues.getJob('deliver', 'D1')).toBeDefined();

        const other = await seedBatch(gw.db, 'D1', { status: 'parked', count: 1 });
        const toOverview = await retry(other.batchId, form({}));
        expect(toOverview.status).toBe(303);
        expect(toOverview.headers.get('location')).toBe(`/admin?retried=${other.batchId}`);

        const third = await seedBatch(gw.db, 'D1', { status: 'parked', count: 1 });
        const toDeliveries = await retry(third.batchId, form({ returnTo: '/admin/deliveries' }));
        expect(toDeliveries.headers.get('location')).toBe(`/admin/deliveries?retried=${third.batchId}`);
        const back = await gw.inject(toDeliveries.headers.get('location')!, { headers: { ...gw.admin, accept: 'text/html' } });
        expect(await back.text()).toContain(`Batch ${third.batchId} is back in the delivery queue`);
      });

      it('refuses to send the browser anywhere but a dashboard page, and changes nothing', async () => {
        const { batchId, recordIds } = await seedBatch(gw.db, 'D1', { status: 'parked', count: 1 });
        for (const returnTo of ['https://evil.example/admin', '//evil.example', '/admin/queues', '/admin/participants/D1/../../x', '/admin/participants/..']) {
          const res = await retry(batchId, form({ returnTo }));
          expect(res.status).toBe(400);
          expect(res.headers.get('content-type')).toMatch(/text\/html/);
          const page = await res.text();
          expect(page).toContain('That retry was not understood');
          expect(page).toContain('press Retry on the batch again');
        }
        expect((await recordsOf(gw.db, recordIds))[0]!.status).toBe('parked');
      });

      it('answers an HTML page saying what happened for a batch already retried, or unknown', async () => {
        const { batchId } = await seedBatch(gw.db, 'D1', { status: 'parked', count: 1 });
        expect((await retry(batchId, form({ returnTo: '/admin' }))).status).toBe(303);
        const again = await retry(batchId, form({ returnTo: '/admin' }));
        expect(again.status).toBe(409);
        expect(again.headers.get('content-security-policy')).toContain("default-src 'none'");
        const page = await again.text();
        expect(page).toContain(`Batch ${batchId} is not parked any more`);
        expect(page).toContain('nothing else needs doing');
        expect(page).toContain('href="/admin"');

        const missing = await retry('987654322', form({ returnTo: '/admin' }));
        expect(missing.status).toBe(404);
        expect(await missing.text()).toContain('There is no delivery batch 987654322');
      });

      it('refuses a retry another site makes the browser send', async () => {
        const { batchId, recordIds } = await seedBatch(gw.db, 'D1', { status: 'parked', count: 1 });
        const crossSite = await retry(batchId, { headers: { ...form({}).headers, 'sec-fetch-site': 'cross-site' }, body: form({}).body });
        expect(crossSite.status).toBe(403);
        const foreignOrigin = await retry(batchId, { headers: { origin: 'https://evil.example' } });
        expect(foreignOrigin.status).toBe(403);
        expect(((await foreignOrigin.json()) as ErrorBody).error).toBe('cross_site');
        expect((await recordsOf(gw.db, recordIds))[0]!.status).toBe('parked');
        expect(await gw.queues.getJob('deliver', 'D1')).toBeUndefined();

        const sameOrigin = await retry(batchId, { headers: { origin: gw.base, 'sec-fetch-site': 'same-origin' } });
        expect(sameOrigin.status).toBe(202);
      });
    });
  });
});
