// POST /v1/batch: many creations in one request — networks, sandboxes (with their connections),
// links, then sandbox settings, in that order, each item done exactly as its own request would do
// it. A lab sends a host's items this way instead of one request each. Not atomic: the first
// failing item stops the batch and names itself (`sandboxes[3].connect[0].ip`); earlier items stay.
import type { FastifyInstance } from 'fastify';
import type { ConnectRequest, Controller, CreateNetworkRequest, CreateSandboxRequest } from '../controller/controller.js';
import type { NetworkRecord, SandboxRecord } from '../core/model.js';
import { CnmkitError } from '../errors.js';
import type { CreateLinkRequest, LinkRecord, LinkService } from '../links/index.js';
import type { NetlinkHandlePool } from '../netlink/index.js';
import { applySandboxConfig, type SandboxConfig } from '../sandbox-config/index.js';
import { createLinkBody, sandboxConfigBody } from './management-links.js';
import { createNetworkBody, createSandboxBody, errorSchema } from './schemas.js';

export type CreateSandboxWithConnect = CreateSandboxRequest & { connect?: Array<ConnectRequest & { network: string }> };

export interface BatchRequest {
  networks?: CreateNetworkRequest[];
  sandboxes?: CreateSandboxWithConnect[];
  links?: CreateLinkRequest[];
  configs?: Array<SandboxConfig & { sandbox: string }>;
}

/** A sandbox and its connections, in order; if one fails, the sandbox is removed and the error names `connect[i]`. */
export async function createConnectedSandbox(c: Controller, body: CreateSandboxWithConnect): Promise<SandboxRecord> {
  const { connect = [], ...create } = body;
  const sb = await c.createSandbox(create);
  for (const [i, { network, ...rest }] of connect.entries()) {
    try {
      await c.connect(network, sb.id, rest);
    } catch (err) {
      await c.deleteSandbox(sb.id).catch(() => undefined);
      if (!(err instanceof CnmkitError)) throw err;
      throw new CnmkitError(err.code, err.errorClass, `network ${network}: ${err.message}`, { field: `connect[${i}]${err.field ? `.${err.field}` : ''}`, cause: err });
    }
  }
  return sb;
}

const errors = { 400: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema, 500: errorSchema };

export const batchBody = {
  type: 'object', additionalProperties: false,
  properties: {
    networks: { type: 'array', items: createNetworkBody },
    sandboxes: { type: 'array', items: createSandboxBody },
    links: { type: 'array', items: createLinkBody },
    configs: { type: 'array', items: { ...sandboxConfigBody, required: ['sandbox'], properties: { sandbox: { type: 'string', minLength: 1 }, ...sandboxConfigBody.properties } } },
  },
} as const;

/** Runs each item in order; a failure is rethrown naming the item (`KIND[i].FIELD`, and the object by name). */
async function each<T, R>(kind: keyof BatchRequest, what: (item: T) => string, items: T[] | undefined, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (const [i, item] of (items ?? []).entries()) {
    try {
      out.push(await fn(item));
    } catch (err) {
      if (!(err instanceof CnmkitError)) throw err;
      throw new CnmkitError(err.code, err.errorClass, `${what(item)}: ${err.message}`, { field: `${kind}[${i}]${err.field ? `.${err.field}` : ''}`, cause: err });
    }
  }
  return out;
}

export interface BatchDeps {
  controller: Controller;
  links: LinkService;
  netlink: NetlinkHandlePool;
  withEndpoints: <T extends NetworkRecord | SandboxRecord>(o: T, key: 'networkId' | 'sandboxId') => T & { endpoints: unknown[] };
}

export function registerBatchRoute(app: FastifyInstance, d: BatchDeps): void {
  const c = d.controller;
  const list = (ref: string) => ({ type: 'array', items: { $ref: `${ref}#` } });
  app.post<{ Body: BatchRequest }>('/v1/batch', {
    schema: {
      description: 'networks, sandboxes (with `connect`), links, then sandbox settings, in order, each as its own request would; stops at the first failure, which names the item',
      body: batchBody,
      response: { 200: { type: 'object', properties: { networks: list('Network'), sandboxes: list('Sandbox'), links: list('Link') } }, ...errors },
    },
  }, async (req) => {
    const b = req.body;
    const networks = await each('networks', (n) => `network ${n.name}`, b.networks, async (n) => d.withEndpoints(await c.createNetwork(n), 'networkId'));
    const sandboxes = await each('sandboxes', (s) => `sandbox ${s.name ?? '(unnamed)'}`, b.sandboxes, async (s) => d.withEndpoints(await createConnectedSandbox(c, s), 'sandboxId'));
    const links: LinkRecord[] = await each('links', (l) => `link ${l.name}`, b.links, (l) => d.links.create(l));
    await each('configs', (s) => `sandbox ${s.sandbox}`, b.configs, async ({ sandbox, ...config }) => applySandboxConfig(d.netlink, c.sandbox(sandbox), config));
    return { networks, sandboxes, links };
  });
}
