// Management API routes of cluster mode: this daemon's cluster status (with the interface that
// holds its VTEP address now) and the registered hosts.
// Without --cluster-store both answer 409 ERR_NOT_IN_CLUSTER; with etcd down, hosts answers 503.
import type { FastifyInstance } from 'fastify';
import type { Cluster, ClusterStatusReport } from '../cluster/types.js';
import { NotInClusterError } from '../errors.js';
import { errorSchema } from './schemas.js';

const errors = { 409: errorSchema, 500: errorSchema, 503: errorSchema };

const statusSchema = {
  type: 'object',
  properties: {
    state: { type: 'string', enum: ['connecting', 'connected', 'unavailable', 'closed'] }, hostId: { type: 'string' }, vtep: { type: 'string' },
    vtepInterface: { type: ['string', 'null'], description: 'the interface holding the VTEP address now; null: none (overlays cannot be made or joined here)' },
    lease: { type: 'object', properties: { id: { type: 'string' }, ttl: { type: 'integer' }, lastKeepAlive: { type: 'string' } } },
    store: { type: 'string', description: 'the cluster store, as --cluster-store names it' },
    unavailableSince: { type: 'string', description: 'while the store does not answer: since when' },
    unavailableFor: { type: 'integer', description: 'while the store does not answer: for how many seconds' },
    error: { type: 'string' }, conflicts: { type: 'array', items: { type: 'string' } },
  },
} as const;

const hostSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' }, hostname: { type: 'string' }, vtep: { type: 'string' }, pid: { type: 'integer' }, started: { type: 'string' },
    version: { type: 'string' }, leaseId: { type: 'string' }, state: { type: 'string', enum: ['alive', 'expiring'] },
    ttl: { type: 'integer', description: 'seconds until the lease expires unless kept alive' }, grantedTtl: { type: 'integer' }, self: { type: 'boolean' },
    vtepInterface: { type: ['string', 'null'], description: 'this host only: the interface holding its VTEP address now; null: none' },
    localSubnets: { type: 'array', items: { type: 'object', properties: { network: { type: 'string' }, subnet: { type: 'string' } } } },
  },
} as const;

export function registerClusterRoutes(app: FastifyInstance, cluster: Cluster | undefined): void {
  const need = (): Cluster => {
    if (!cluster) throw new NotInClusterError();
    return cluster;
  };
  app.get('/v1/cluster', { schema: { response: { 200: statusSchema, ...errors } } }, async (): Promise<ClusterStatusReport> => {
    const c = need();
    return { ...c.status(), vtepInterface: c.vtepInterface() ?? null };
  });
  app.get('/v1/cluster/hosts', { schema: { response: { 200: { type: 'array', items: hostSchema }, ...errors } } }, async () =>
    (await need().hosts()).sort((a, b) => a.hostname.localeCompare(b.hostname) || a.id.localeCompare(b.id)),
  );
}
