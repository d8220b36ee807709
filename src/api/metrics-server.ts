// `--metrics-addr HOST:PORT`: the daemon's metrics on TCP for a Prometheus scraper (Docker's
// convention; off by default). Only GET /metrics is served there, with the sockets' limits; the
// management API never listens on TCP.
import net from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { InvalidArgumentError } from '../errors.js';
import { clientErrorHandler, errorHandler, managementClientError, notFoundHandler } from './errors.js';
import type { DaemonMetrics } from './metrics.js';
import { limitedServer, MANAGEMENT_LIMITS } from './socket.js';

export interface MetricsAddr {
  host: string;
  port: number;
}

/** `127.0.0.1:9323` or `[::1]:9323` → host and port; the host must be an IP address. */
export function parseMetricsAddr(text: string): MetricsAddr {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !host || !net.isIP(host) || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new InvalidArgumentError('metrics-addr', `expected IP:PORT, e.g. 127.0.0.1:9323 or [::1]:9323, got ${JSON.stringify(text)}`);
  return { host, port };
}

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
