import formbody from '@fastify/formbody';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { acknowledgeAlert } from '@fitlamp/db';
import type { GatewayDeps } from './app.ts';
import { signedInAs, studyScopeOf } from './admin-auth.ts';
import { backLink, isForm, refuseCrossSiteFor } from './admin-deliveries.ts';
import { sendDashboardPage } from './dashboard.ts';
import { sendError } from './errors.ts';
import { html, problemPage } from './pages.ts';

const alertParams = z.object({ alertId: z.string().regex(/^[1-9][0-9]{0,17}$/, 'an alert id: a positive whole number') });

/**
 * `POST /admin/alerts/:alertId/acknowledge`: the overview's Acknowledge button (a form, answered
 * with a redirect back to the overview) or an API client (JSON). A coordinator may acknowledge
 * only their studies' alerts. Register behind the admin guard.
 */
export async function registerAdminAlertRoutes(scope: FastifyInstance, deps: Pick<GatewayDeps, 'db' | 'logger'>): Promise<void> {
  const { db, logger } = deps;
  const refuseCrossSite = refuseCrossSiteFor('Acknowledge', 'acknowledgement');
  await scope.register(async (formScope) => {
    await formScope.register(formbody, { bodyLimit: 1024 });
    formScope.withTypeProvider<ZodTypeProvider>().post(
      '/admin/alerts/:alertId/acknowledge',
      { schema: { params: alertParams }, preValidation: refuseCrossSite },
      async (request, reply) => {
        const { alertId } = request.params;
        const by = signedInAs(request);
        const outcome = await acknowledgeAlert(db, alertId, by, studyScopeOf(request));
        if (outcome === 'not_found') {
          if (!isForm(request)) return sendError(reply, 404, 'alert_not_found', `there is no alert ${alertId}; the overview at /admin lists the open ones`);
          return sendDashboardPage(
            reply,
            404,
            'Alert not found',
            html`${problemPage(`There is no alert ${alertId}`, 'The link is wrong, or the alert belongs to a study you do not coordinate.', 'Reload the dashboard to see the open alerts.')}${backLink('/admin')}`,
          );
        }
        if (outcome === 'acknowledged') logger.info({ alertId, by }, 'alert acknowledged');
        if (isForm(request)) return reply.code(303).header('location', `/admin?acknowledged=${alertId}`).send();
        return reply.code(200).send({ alertId, acknowledged: true, already: outcome === 'already_acknowledged' });
      },
    );
  });
}
