// `--metrics-addr HOST:PORT`: the daemon's metrics on TCP for a Prometheus scraper (Docker's
// convention; off by default). Only GET /metrics is served there, with the sockets' limits; the
// management API never listens on TCP.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { clientErrorHandler, errorHandler, managementClientError, notFoundHandler } from './errors.js';
import type { DaemonMetrics } from './metrics.js';
import type { MetricsAddr } from './metrics-addr.js';
import { limitedServer, MANAGEMENT_LIMITS } from './socket.js';

/** Listens on addr and serves GET /metrics only; close() stops it. */
export async function serveMetrics(addr: MetricsAddr, metrics: DaemonMetrics, logger: Logger): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }), forceCloseConnections: true,
    ...limitedServer(MANAGEMENT_LIMITS),
    clientErrorHandler: clientErrorHandler(managementClientError),
    frameworkErrors: errorHandler,
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  app.get('/metrics', async (_req, reply) => {
    const { contentType, text } = await metrics.expose();
    return reply.type(contentType).send(text);
  });
  await app.listen({ host: addr.host, port: addr.port });
  return app;
}
