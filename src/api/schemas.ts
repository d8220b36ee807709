// JSON Schemas of the management API: requests are validated with them and the OpenAPI document
// at /openapi.json is generated from them.

const stringMap = { type: 'object', additionalProperties: { type: 'string' } } as const;
const state = { type: 'string', enum: ['creating', 'ready', 'deleting'] } as const;

export const subnetSchema = {
  type: 'object',
  properties: {
    poolId: { type: 'string' }, subnet: { type: 'string' }, ipRange: { type: 'string' }, gateway: { type: 'string' },
    auxAddresses: stringMap,
  },
} as const;

export const networkSchema = {
  $id: 'Network',
  type: 'object',
  properties: {
    id: { type: 'string' }, name: { type: 'string' }, driver: { type: 'string' }, scope: { type: 'string' },
    internal: { type: 'boolean' }, enableIPv6: { type: 'boolean' }, options: stringMap, labels: stringMap,
    ipv4: { type: 'array', items: subnetSchema }, ipv6: { type: 'array', items: subnetSchema },
    dockerId: { type: 'string' }, state, created: { type: 'string' },
    endpoints: { type: 'array', items: { $ref: 'Endpoint#' } },
    global: {
      type: 'object', description: 'global networks only: the VXLAN id, UDP port, MTU if set, and the hosts that have endpoints on it',
      properties: {
        vni: { type: 'integer' }, port: { type: 'integer' }, mtu: { type: 'integer' },
        hosts: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, hostname: { type: 'string' }, vtep: { type: 'string' }, endpoints: { type: 'integer' } } } },
      },
    },
  },
} as const;

/** What check found for one network (GET /v1/networks/:ref/check, GET /v1/check, POST /v1/check/fix, POST /v1/networks/:ref/check/fix): empty items = no drift; unchecked (when any): what could not be compared, and why. */
export const networkCheckSchema = {
  $id: 'NetworkCheck',
  type: 'object',
  properties: {
    network: { type: 'string' }, id: { type: 'string' }, driver: { type: 'string' },
    items: {
      type: 'array',
      items: {
        type: 'object',
        properties: { object: { type: 'string' }, what: { type: 'string' }, expected: { type: 'string' }, found: { type: 'string' } },
      },
    },
    unchecked: {
      type: 'array',
      items: { type: 'object', properties: { object: { type: 'string' }, what: { type: 'string' }, reason: { type: 'string' } } },
    },
    repaired: {
      type: 'array',
      description: 'POST …/check/fix only: what differed before the repair and no longer does (items: what is left)',
      items: {
        type: 'object',
        properties: { object: { type: 'string' }, what: { type: 'string' }, expected: { type: 'string' }, found: { type: 'string' } },
      },
    },
    repairFailed: { type: 'string', description: 'POST …/check/fix only: why the driver\'s repair stopped' },
  },
} as const;

export const endpointSchema = {
  $id: 'Endpoint',
  type: 'object',
  properties: {
    id: { type: 'string' }, networkId: { type: 'string' }, sandboxId: { type: 'string' }, name: { type: 'string' },
    ifname: { type: 'string' }, macAddress: { type: 'string' }, ipv4: { type: 'string' }, ipv6: { type: 'string' },
    ports: { type: 'array', items: {} }, created: { type: 'string' },
    state: { type: 'string', enum: ['creating', 'ready', 'deleting', 'conflict'], description: 'conflict (network inspect of a global network): not in the cluster, see conflict' },
    conflict: { type: 'string', description: 'network inspect of a global network: why this host\'s endpoint is not in the cluster (another host took its address or MAC while this host was away)' },
  },
} as const;

export const sandboxSchema = {
  $id: 'Sandbox',
  type: 'object',
  properties: {
    id: { type: 'string' }, name: { type: 'string' }, kind: { type: 'string', enum: ['named', 'path', 'host'] },
    netnsPath: { type: 'string' }, labels: stringMap, state, created: { type: 'string' },
    endpoints: { type: 'array', items: { $ref: 'Endpoint#' } },
  },
} as const;

export const errorSchema = {
  type: 'object',
  properties: { error: { type: 'string' }, code: { type: 'string' }, field: { type: 'string' } },
  required: ['error', 'code'],
} as const;

export const createNetworkBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 64 },
    driver: { type: 'string', minLength: 1 },
    subnet: { type: 'string' }, ipRange: { type: 'string' }, gateway: { type: 'string' },
    auxAddresses: stringMap,
    subnetV6: { type: 'string' }, gatewayV6: { type: 'string' },
    enableIPv4: {
      type: 'boolean',
      description: 'false: a network without IPv4 — no subnet, no gateway, endpoints without an IPv4 address (with enableIPv6 false too, a bridge is a layer-2 segment, as a containerlab bridge); not for global networks. Default true',
    },
    enableIPv6: { type: 'boolean' }, internal: { type: 'boolean' },
    options: stringMap, labels: stringMap,
  },
} as const;

const connectFields = {
  ip: { type: 'string', minLength: 1 },
  ipv6: { type: 'string', minLength: 1 },
  mac: { type: 'string', minLength: 1 },
  ifname: { type: 'string', minLength: 1, maxLength: 15 },
  ports: { type: 'array', items: { type: 'string' } },
} as const;

export const connectBody = {
  type: 'object',
  additionalProperties: false,
  required: ['sandbox'],
  properties: { sandbox: { type: 'string', minLength: 1 }, ...connectFields },
} as const;

export const createSandboxBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 64 },
    netns: { type: 'string', minLength: 1 },
    host: { type: 'boolean' },
    labels: stringMap,
    connect: {
      type: 'array',
      description: 'networks to connect the new sandbox to, in order (as POST /v1/networks/{ref}/connect each); if one fails, the sandbox is removed',
      items: { type: 'object', additionalProperties: false, required: ['network'], properties: { network: { type: 'string', minLength: 1 }, ...connectFields } },
    },
  },
} as const;

export const forceQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { force: { type: 'string', enum: ['true', 'false', '1', '0'], description: 'remove even while `cnmkit run` uses it' } },
} as const;

const checkSchema = {
  type: 'object',
  required: ['status', 'ms'],
  properties: { status: { type: 'string', enum: ['ok', 'failed'] }, ms: { type: 'number' }, error: { type: 'string' } },
} as const;

/** GET /health: 200 when every check passes, else 503 with the error shape too. */
export const healthSchema = {
  type: 'object',
  required: ['status', 'checks'],
  properties: {
    status: { type: 'string', enum: ['ok', 'unavailable'] },
    checks: { type: 'object', properties: { store: checkSchema, firewall: checkSchema, kernel: checkSchema } },
    error: { type: 'string' }, code: { type: 'string' },
  },
} as const;

export const refParams = {
  type: 'object',
  required: ['ref'],
  properties: { ref: { type: 'string', minLength: 1 } },
} as const;
