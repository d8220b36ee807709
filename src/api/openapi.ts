// GET /openapi.json: the management API's OpenAPI document, made when first asked for from the
// routes as they were registered: @fastify/swagger reads a copy of them (no handlers, nothing
// compiled) on an app of its own. swagger, its $ref resolver and its YAML package are loaded then,
// not at every daemon start (~0.25 MiB of code to compile before the API could answer).
import type { FastifyInstance, RouteOptions } from 'fastify';
import { VERSION } from '../version.js';

const INFO = { title: 'cnmkit management API', version: VERSION };

/** Records app's routes from now on and serves their document at GET /openapi.json. */
export function serveOpenApi(app: FastifyInstance): void {
  const routes: RouteOptions[] = [];
  app.addHook('onRoute', (r) => void routes.push(r));
  let doc: Promise<unknown> | undefined;
  app.get('/openapi.json', { schema: { hide: true } }, async () => {
    doc ??= describe(app, routes);
    doc.catch(() => (doc = undefined));
    return doc;
  });
}

async function describe(app: FastifyInstance, routes: RouteOptions[]): Promise<unknown> {
  const [{ default: Fastify }, { default: swagger }] = await Promise.all([import('fastify'), import('@fastify/swagger')]);
  const never = (): never => {
    throw new Error('the OpenAPI copy of the routes serves nothing');
  };
  const nothing = { buildValidator: () => () => () => true, buildSerializer: () => () => JSON.stringify } as never;
  const copy = Fastify({ schemaController: { compilersFactory: nothing } });
  await copy.register(swagger, { openapi: { info: INFO } });
  for (const s of Object.values(app.getSchemas())) copy.addSchema(s);
  // HEAD routes are fastify's own copies of the GET ones (swagger leaves them out too).
  for (const r of routes) if (r.method !== 'HEAD') copy.route({ method: r.method, url: r.url, ...(r.schema ? { schema: r.schema } : {}), ...(r.config ? { config: r.config } : {}), handler: never });
  await copy.ready();
  try {
    return copy.swagger();
  } finally {
    await copy.close();
  }
}
