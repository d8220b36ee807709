// The management API (fastify, JSON over a unix socket): networks, sandboxes, connect and
// disconnect, version and the OpenAPI document. Routes validate with src/api/schemas.ts;
// errors become replies only in src/api/errors.ts.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import type { Logger } from 'pino';
import type { Controller } from '../cnm/controller.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../cnm/model.js';
import { errorHandler } from './errors.js';
import { registerLabRoutes } from './management-links.js';
import type { LinkService } from '../links/index.js';
import type { NetlinkHandlePool } from '../netlink/index.js';
import { removeHostsFile } from '../sandbox-config/index.js';
import {
  connectBody, createNetworkBody, createSandboxBody, endpointSchema, errorSchema, networkSchema, refParams, sandboxSchema,
} from './schemas.js';
import { VERSION } from '../version.js';

export interface ManagementOptions {
  controller: Controller;
  logger: Logger;
  /** Re-applies every firewall rule from the store and removes rules nothing owns. */
  reloadFirewall: () => Promise<{ backend: string; removedOwners: string[]; notes: string[] }>;
  /** Point-to-point links between sandboxes; a sandbox's links go before it does. */
  links: LinkService;
  netlink: NetlinkHandlePool;
}

type Ref = { Params: { ref: string } };
const errors = { 400: errorSchema, 404: errorSchema, 409: errorSchema, 500: errorSchema };

export async function buildManagementApi(opts: ManagementOptions): Promise<FastifyInstance> {
  // Requests are logged at debug level (one line each, when done), as the Docker daemon does.
  const app = Fastify({
    loggerInstance: opts.logger as FastifyBaseLogger, disableRequestLogging: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  });
  if (opts.logger.isLevelEnabled('debug')) {
    app.addHook('onResponse', async (req, reply) => {
      req.log.debug({ method: req.method, url: req.url, statusCode: reply.statusCode, ms: reply.elapsedTime }, 'request completed');
    });
  }
  app.setErrorHandler(errorHandler);
  await app.register(swagger, {
    openapi: { info: { title: 'cnmkit management API', version: VERSION } },
  });
  app.addSchema(endpointSchema);
  app.addSchema(networkSchema);
  app.addSchema(sandboxSchema);
  const c = opts.controller;
  const withEndpoints = <T extends NetworkRecord | SandboxRecord>(o: T, key: 'networkId' | 'sandboxId'): T & { endpoints: EndpointRecord[] } => ({
    ...o,
    endpoints: c.endpointsOf({ [key]: o.id }),
  });

  app.get('/v1/version', {
    schema: { response: { 200: { type: 'object', properties: { version: { type: 'string' }, pid: { type: 'integer', description: "the daemon's pid: /proc/PID/ns/net is the host namespace it manages" } } } } },
  }, async () => ({ version: VERSION, pid: process.pid }));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.get('/v1/networks', { schema: { response: { 200: { type: 'array', items: { $ref: 'Network#' } } } } }, async () =>
    c.listNetworks().map((n) => withEndpoints(n, 'networkId')),
  );
  app.get<Ref>('/v1/networks/:ref', { schema: { params: refParams, response: { 200: { $ref: 'Network#' }, ...errors } } }, async (req) =>
    withEndpoints(c.network(req.params.ref), 'networkId'),
  );
  app.post<{ Body: import('../cnm/controller.js').CreateNetworkRequest }>(
    '/v1/networks',
    { schema: { body: createNetworkBody, response: { 201: { $ref: 'Network#' }, ...errors } } },
    async (req, reply) => reply.status(201).send(withEndpoints(await c.createNetwork(req.body), 'networkId')),
  );
  app.delete<Ref>('/v1/networks/:ref', { schema: { params: refParams, response: { 204: { type: 'null' }, ...errors } } }, async (req, reply) => {
    await c.deleteNetwork(req.params.ref);
    return reply.status(204).send();
  });
  app.post('/v1/networks/prune', { schema: { response: { 200: { type: 'object', properties: { removed: { type: 'array', items: { type: 'string' } } } } } } }, async () => ({
    removed: await c.pruneNetworks(),
  }));
  app.post<Ref & { Body: { sandbox: string; ip?: string; ipv6?: string; ifname?: string; ports?: string[] } }>(
    '/v1/networks/:ref/connect',
    { schema: { params: refParams, body: connectBody, response: { 201: { $ref: 'Endpoint#' }, ...errors } } },
    async (req, reply) => {
      const { sandbox, ...rest } = req.body;
      return reply.status(201).send(await c.connect(req.params.ref, sandbox, rest));
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

  app.get('/v1/sandboxes', { schema: { response: { 200: { type: 'array', items: { $ref: 'Sandbox#' } } } } }, async () =>
    c.listSandboxes().map((s) => withEndpoints(s, 'sandboxId')),
  );
  app.get<Ref>('/v1/sandboxes/:ref', { schema: { params: refParams, response: { 200: { $ref: 'Sandbox#' }, ...errors } } }, async (req) =>
    withEndpoints(c.sandbox(req.params.ref), 'sandboxId'),
  );
  app.post<{ Body: import('../cnm/controller.js').CreateSandboxRequest }>(
    '/v1/sandboxes',
    { schema: { body: createSandboxBody, response: { 201: { $ref: 'Sandbox#' }, ...errors } } },
    async (req, reply) => reply.status(201).send(withEndpoints(await c.createSandbox(req.body), 'sandboxId')),
  );
  app.delete<Ref>('/v1/sandboxes/:ref', { schema: { params: refParams, response: { 204: { type: 'null' }, ...errors } } }, async (req, reply) => {
    const sb = c.listSandboxes().find((s) => s.name === req.params.ref || s.id === req.params.ref);
    if (sb) await opts.links.deleteFor(sb.id);
    await c.deleteSandbox(req.params.ref);
    if (sb?.kind === 'named') removeHostsFile(sb.name);
    return reply.status(204).send();
  });
  registerLabRoutes(app, { controller: c, links: opts.links, netlink: opts.netlink });
  return app;
}
