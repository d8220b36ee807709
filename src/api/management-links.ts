// Management API routes for labs: point-to-point links between sandboxes (src/links) and a
// sandbox's own settings — sysctls, routes, neighbours, hosts file (src/sandbox-config).
import type { FastifyInstance } from 'fastify';
import type { Controller } from '../controller/controller.js';
import type { NetlinkHandlePool } from '../netlink/index.js';
import type { CreateLinkRequest, LinkService } from '../links/index.js';
import { applySandboxConfig, type SandboxConfig } from '../sandbox-config/index.js';
import { errorSchema, refParams } from './schemas.js';

const errors = { 400: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema, 500: errorSchema };
const ifname = { type: 'string', minLength: 1, maxLength: 15 } as const;
const stringMap = { type: 'object', additionalProperties: { type: 'string' } } as const;

const linkEnd = {
  type: 'object', additionalProperties: false, required: ['sandbox', 'ifname'],
  properties: { sandbox: { type: 'string', minLength: 1 }, ifname, address: { type: 'string', minLength: 1 } },
} as const;

export const createLinkBody = {
  type: 'object', additionalProperties: false, required: ['name', 'ends'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 128 },
    ends: { type: 'array', minItems: 2, maxItems: 2, items: linkEnd },
    mtu: { type: 'integer', minimum: 68, maximum: 65535 },
    rate: { type: 'string' }, delay: { type: 'string' }, jitter: { type: 'string' }, loss: { type: 'string' },
    labels: stringMap,
  },
} as const;

export const linkSchema = {
  $id: 'Link',
  type: 'object',
  properties: {
    id: { type: 'string' }, name: { type: 'string' }, mtu: { type: 'integer' }, labels: stringMap, state: { type: 'string' }, created: { type: 'string' },
    ends: { type: 'array', items: { type: 'object', properties: { sandboxId: { type: 'string' }, ifname: { type: 'string' }, address: { type: 'string' }, macAddress: { type: 'string' } } } },
    shaping: { type: 'object', properties: { rate: { type: 'string' }, delay: { type: 'string' }, jitter: { type: 'string' }, loss: { type: 'string' } } },
  },
} as const;

export const sandboxConfigBody = {
  type: 'object', additionalProperties: false,
  properties: {
    sysctls: stringMap,
    routes: { type: 'array', items: { type: 'object', additionalProperties: false, required: ['dst'], properties: { dst: { type: 'string', minLength: 1 }, via: { type: 'string', minLength: 1 }, dev: ifname } } },
    neighbors: { type: 'array', items: { type: 'object', additionalProperties: false, required: ['dev', 'ip', 'mac'], properties: { dev: ifname, ip: { type: 'string', minLength: 1 }, mac: { type: 'string', minLength: 1 } } } },
    hosts: { type: 'array', items: { type: 'object', additionalProperties: false, required: ['ip', 'names'], properties: { ip: { type: 'string', minLength: 1 }, names: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } } } } },
  },
} as const;

type Ref = { Params: { ref: string } };

export function registerLabRoutes(app: FastifyInstance, deps: { controller: Controller; links: LinkService; netlink: NetlinkHandlePool }): void {
  const { controller, links } = deps;
  app.addSchema(linkSchema);
  app.get('/v1/links', { schema: { response: { 200: { type: 'array', items: { $ref: 'Link#' } } } } }, async () => links.list());
  app.get<Ref>('/v1/links/:ref', { schema: { params: refParams, response: { 200: { $ref: 'Link#' }, ...errors } } }, async (req) => links.get(req.params.ref));
  app.post<{ Body: CreateLinkRequest }>('/v1/links', { schema: { body: createLinkBody, response: { 201: { $ref: 'Link#' }, ...errors } } }, async (req, reply) =>
    reply.status(201).send(await links.create(req.body)),
  );
  app.delete<Ref>('/v1/links/:ref', { schema: { params: refParams, response: { 204: { type: 'null' }, ...errors } } }, async (req, reply) => {
    await links.delete(req.params.ref);
    return reply.status(204).send();
  });
  app.post<Ref & { Body: SandboxConfig }>(
    '/v1/sandboxes/:ref/config',
    { schema: { params: refParams, body: sandboxConfigBody, response: { 204: { type: 'null' }, ...errors } } },
    async (req, reply) => {
      await applySandboxConfig(deps.netlink, controller.sandbox(req.params.ref), req.body);
      return reply.status(204).send();
    },
  );
}
