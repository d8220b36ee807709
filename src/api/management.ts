// The management API (fastify, JSON over a unix socket): networks, sandboxes, connect and
// disconnect, check (kernel against store) and its repair, version, the OpenAPI document, /health and /metrics. Routes validate with
// src/api/schemas.ts; errors become replies only in src/api/errors.ts.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { Controller } from '../controller/controller.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../core/model.js';
import { asked, CnmkitError, NotFoundError } from '../errors.js';
import { clientErrorHandler, errorHandler, managementClientError, notFoundHandler } from './errors.js';
import { MANAGEMENT_AJV_OPTIONS, managementCompilers, type ManagementCompilers } from './compilers.js';
import type { Precompiled } from './precompiled.js';
import { failedChecks, type HealthReport } from './health.js';
import type { DaemonMetrics } from './metrics.js';
import { runnerOf } from './run-label.js';
import type { Cluster } from '../cluster/types.js';
import { registerClusterRoutes } from './cluster.js';
import { registerLabRoutes } from './management-links.js';
import { createConnectedSandbox, registerBatchRoute, type CreateSandboxWithConnect } from './management-batch.js';
import type { LinkService } from '../links/index.js';
import type { NetlinkHandlePool } from '../netlink/index.js';
import {
  connectBody, createNetworkBody, createSandboxBody, endpointSchema, errorSchema, forceQuery, healthSchema, networkCheckSchema, networkSchema, refParams,
  sandboxSchema,
} from './schemas.js';
import { limitedServer, MANAGEMENT_LIMITS, type SocketLimits } from './socket.js';
import { serveOpenApi } from './openapi.js';
import { WARNING_HEADER } from './headers.js';
import { VERSION } from '../version.js';

export interface ManagementOptions {
  controller: Controller;
  logger: Logger;
  /** Re-applies every firewall rule from the store and removes rules nothing owns. */
  reloadFirewall: () => Promise<{ backend: string; removedOwners: string[]; notes: string[] }>;
  /** Served at GET /metrics, and counts error replies. */
  metrics?: DaemonMetrics;
  /** Served at GET /health. */
  health?: () => Promise<HealthReport>;
  limits?: SocketLimits;
  /** Present in cluster mode. */
  cluster?: Cluster;
  /** Point-to-point links between sandboxes (the lab routes); the controller removes a sandbox's links with it. */
  links?: LinkService;
  netlink?: NetlinkHandlePool;
  /** Validators and serializers compiled ahead (default: the bundle's, from the sources none; compilers.ts). */
  precompiled?: Precompiled;
  /** fastify's compilers instead of compilers.ts's (scripts/build-schemas.ts records the routes' code with its own). */
  compilers?: ManagementCompilers;
}

type Ref = { Params: { ref: string } };
const errors = { 400: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema, 500: errorSchema };

/** Refuses to remove a sandbox that a live `cnmkit run` uses, unless forced. */
function checkNotInUse(c: Controller, ref: string, force: boolean): void {
  if (force) return;
  let sb: SandboxRecord;
  try {
    sb = c.sandbox(ref);
  } catch (err) {
    if (err instanceof NotFoundError) return;
    throw err;
  }
  const pid = runnerOf(sb.labels);
  if (pid !== undefined)
    throw new CnmkitError('ERR_SANDBOX_IN_USE', 'conflict', `sandbox ${sb.name} is in use by \`cnmkit run\` (pid ${pid}): end that command, or remove the sandbox with --force`);
}

/** GET /metrics and GET /health, when the daemon gives them. */
function addObservability(app: FastifyInstance, opts: ManagementOptions): void {
  const { metrics, health } = opts;
  if (metrics) {
    app.get('/metrics', { schema: { description: 'Prometheus metrics (text exposition format)' } }, async (_req, reply) => {
      const { contentType, text } = await metrics.expose();
      return reply.type(contentType).send(text);
    });
  }
  if (health) {
    app.get('/health', { schema: { response: { 200: healthSchema, 503: healthSchema } } }, async (_req, reply) => {
      const report = await health();
      if (report.status === 'ok') return report;
      return reply.status(503).send({ ...report, error: `unhealthy: ${failedChecks(report)}`, code: 'ERR_UNHEALTHY' });
    });
  }
}

export { MANAGEMENT_AJV_OPTIONS };

/** The fastify app with its limits, logging and error handlers (every error counted when metrics are given). */
function createApp(opts: ManagementOptions): FastifyInstance {
  const warm: (() => void)[] = [];
  // Requests are logged at debug level (one line each, when done), as the Docker daemon does.
  const app = Fastify({
    loggerInstance: opts.logger as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: MANAGEMENT_AJV_OPTIONS },
    schemaController: { compilersFactory: opts.compilers ?? managementCompilers(warm, opts.precompiled) },
    ...limitedServer(opts.limits ?? MANAGEMENT_LIMITS),
    clientErrorHandler: clientErrorHandler((status, message) => {
      opts.metrics?.countError('management', { statusCode: status });
      return managementClientError(status, message);
    }),
    frameworkErrors: (err, req, reply) => {
      opts.metrics?.countError('management', err);
      errorHandler(err, req, reply);
    },
  });
  app.addHook('onListen', async () => {
    const next = (): void => {
      warm.shift()?.();
      if (warm.length > 0) setImmediate(next);
    };
    setImmediate(next);
  });
  if (opts.logger.isLevelEnabled('debug')) {
    app.addHook('onResponse', async (req, reply) => {
      req.log.debug({ method: req.method, url: req.url, statusCode: reply.statusCode, ms: reply.elapsedTime }, 'request completed');
    });
  }
  app.setErrorHandler((err, req, reply) => {
    opts.metrics?.countError('management', err);
    errorHandler(err, req, reply);
  });
  app.setNotFoundHandler((req, reply) => {
    opts.metrics?.countError('management', new NotFoundError('route', req.url));
    notFoundHandler(req, reply);
  });
  return app;
}

type WithEndpoints = <T extends NetworkRecord | SandboxRecord>(o: T, key: 'networkId' | 'sandboxId') => T & { endpoints: EndpointRecord[] };

function addSandboxRoutes(app: FastifyInstance, c: Controller, withEndpoints: WithEndpoints): void {
  app.get('/v1/sandboxes', { schema: { response: { 200: { type: 'array', items: { $ref: 'Sandbox#' } } } } }, async () =>
    c.listSandboxes().map((s) => withEndpoints(s, 'sandboxId')),
  );
  app.get<Ref>('/v1/sandboxes/:ref', { schema: { params: refParams, response: { 200: { $ref: 'Sandbox#' }, ...errors } } }, async (req) =>
    withEndpoints(c.sandbox(req.params.ref), 'sandboxId'),
  );
  // With `connect`, one request makes a sandbox and its connections (a lab's node): all of them, or none.
  app.post<{ Body: CreateSandboxWithConnect }>(
    '/v1/sandboxes',
    { schema: { body: createSandboxBody, response: { 201: { $ref: 'Sandbox#' }, ...errors } } },
    async (req, reply) => reply.status(201).send(withEndpoints(await createConnectedSandbox(c, req.body), 'sandboxId')),
  );
  app.delete<Ref & { Querystring: { force?: string } }>('/v1/sandboxes/:ref', {
    schema: { params: refParams, querystring: forceQuery, response: { 204: { type: 'null' }, ...errors } },
  }, async (req, reply) => {
    checkNotInUse(c, req.params.ref, req.query.force === 'true' || req.query.force === '1');
    await c.deleteSandbox(req.params.ref);
    return reply.status(204).send();
  });
}

export async function buildManagementApi(opts: ManagementOptions): Promise<FastifyInstance> {
  const app = createApp(opts);
  serveOpenApi(app);
  app.addSchema(endpointSchema);
  app.addSchema(networkSchema);
  app.addSchema(sandboxSchema);
  app.addSchema(networkCheckSchema);
  const c = opts.controller;
  const withEndpoints: WithEndpoints = (o, key) => ({
    ...o,
    endpoints: c.endpointsOf({ [key]: o.id }),
  });

  app.get('/v1/version', {
    schema: { response: { 200: { type: 'object', properties: { version: { type: 'string' }, pid: { type: 'integer', description: "the daemon's pid: /proc/PID/ns/net is the host namespace it manages" } } } } },
  }, async () => ({ version: VERSION, pid: process.pid }));
  addObservability(app, opts);

  // Global networks carry `global` (VNI, hosts with endpoints); the cluster's networks this host has no record of are listed too.
  // Why a reply may lack some (the cluster store did not answer) goes in a header, one per warning: the body stays as it is.
  // An endpoint in conflict in the cluster (not published: another host took its address or MAC) shows it, with why.
  const described = async (n: NetworkRecord, warn: (message: string) => void) => {
    const { conflicts, ...global } = (await c.describeGlobal(n, warn)) ?? {};
    const out = withEndpoints(n, 'networkId');
    const why = (conflicts ?? {}) as Record<string, string>;
    const endpoints = out.endpoints.map((ep) => (why[ep.id] ? { ...ep, state: 'conflict', conflict: why[ep.id] } : ep));
    return { ...out, endpoints, ...(Object.keys(global).length > 0 ? { global } : {}) };
  };
  const warned = (reply: FastifyReply, warnings: string[]): void => {
    if (warnings.length > 0) reply.header(WARNING_HEADER, [...new Set(warnings)].map((w) => w.replace(/[^\x20-\x7e]/g, '?')));
  };
  app.get('/v1/networks', { schema: { response: { 200: { type: 'array', items: { $ref: 'Network#' } } } } }, async (_req, reply) => {
    const { networks, warnings } = await c.listNetworksWithGlobal();
    const undescribed: string[] = [];
    const out = await Promise.all(networks.map((n) => described(n, (w) => undescribed.push(w))));
    // An unlisted cluster says the rest already (global networks not described).
    warned(reply, warnings.length > 0 ? warnings : undescribed);
    return out;
  });
  app.get<Ref>('/v1/networks/:ref', { schema: { params: refParams, response: { 200: { $ref: 'Network#' }, ...errors } } }, async (req, reply) => {
    const warnings: string[] = [];
    const out = await described(await c.networkOrGlobal(req.params.ref), (w) => warnings.push(w));
    warned(reply, warnings);
    return out;
  });
  app.post<{ Body: import('../controller/controller.js').CreateNetworkRequest }>(
    '/v1/networks',
    { schema: { body: createNetworkBody, response: { 201: { $ref: 'Network#' }, ...errors } } },
    async (req, reply) => {
      const net = await asked(`create network ${req.body.name}`, () => c.createNetwork(req.body));
      warned(reply, c.globalWarnings(net));
      return reply.status(201).send(withEndpoints(net, 'networkId'));
    },
  );
  app.delete<Ref>('/v1/networks/:ref', { schema: { params: refParams, response: { 204: { type: 'null' }, ...errors } } }, async (req, reply) => {
    await asked(`remove network ${req.params.ref}`, () => c.deleteNetwork(req.params.ref));
    return reply.status(204).send();
  });
  const pruned = {
    type: 'object',
    properties: {
      removed: { type: 'array', items: { type: 'string' } },
      skipped: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, reason: { type: 'string' } } } },
    },
  };
  app.get<Ref>('/v1/networks/:ref/check', { schema: { params: refParams, response: { 200: { $ref: 'NetworkCheck#' }, ...errors } } }, async (req) =>
    (await c.check(req.params.ref))[0],
  );
  app.get('/v1/check', { schema: { response: { 200: { type: 'array', items: { $ref: 'NetworkCheck#' } }, ...errors } } }, async () => c.check());
  app.post<Ref>('/v1/networks/:ref/check/fix', { schema: { params: refParams, response: { 200: { $ref: 'NetworkCheck#' }, ...errors } } }, async (req) =>
    (await c.check(req.params.ref, true))[0],
  );
  app.post('/v1/check/fix', { schema: { response: { 200: { type: 'array', items: { $ref: 'NetworkCheck#' } }, ...errors } } }, async () => c.check(undefined, true));
  app.post('/v1/networks/prune', { schema: { response: { 200: pruned } } }, async () => c.pruneNetworks());
  app.post<Ref & { Body: { sandbox: string; ip?: string; ipv6?: string; mac?: string; ifname?: string; ports?: string[] } }>(
    '/v1/networks/:ref/connect',
    { schema: { params: refParams, body: connectBody, response: { 201: { $ref: 'Endpoint#' }, ...errors } } },
    async (req, reply) => {
      const { sandbox, ...rest } = req.body;
      return reply.status(201).send(await asked(`connect sandbox ${sandbox} to network ${req.params.ref}`, () => c.connect(req.params.ref, sandbox, rest)));
    },
  );
  app.post<Ref & { Body: { sandbox: string } }>(
    '/v1/networks/:ref/disconnect',
    { schema: { params: refParams, body: { type: 'object', required: ['sandbox'], properties: { sandbox: { type: 'string', minLength: 1 } } }, response: { 204: { type: 'null' }, ...errors } } },
    async (req, reply) => {
      await c.disconnect(req.params.ref, req.body.sandbox);
      return reply.status(204).send();
    },
  );

  app.post('/v1/firewall/reload', {
    schema: {
      response: {
        200: { type: 'object', properties: { backend: { type: 'string' }, removedOwners: { type: 'array', items: { type: 'string' } }, notes: { type: 'array', items: { type: 'string' } } } },
        ...errors,
      },
    },
  }, async () => opts.reloadFirewall());

  registerClusterRoutes(app, opts.cluster);
  addSandboxRoutes(app, c, withEndpoints);
  if (opts.links && opts.netlink) {
    registerLabRoutes(app, { controller: c, links: opts.links, netlink: opts.netlink });
    registerBatchRoute(app, { controller: c, links: opts.links, netlink: opts.netlink, withEndpoints });
  }
  return app;
}
