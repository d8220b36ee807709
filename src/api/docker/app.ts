// The fastify app for Docker's legacy plugin protocol: POST /<Subsystem>.<Call> with JSON in and
// out. It reads any body whatever its Content-Type (the engine sends none, and 0 bytes for calls
// without arguments), validates requests strictly with the plugin-spec schemas (no type coercion:
// "NetworkID": 0 is refused, unknown keys are kept), always answers at least {} in the plugin
// content type, and turns errors into replies only in ./errors.ts.
// Calls are counted and timed per method when given metrics; slow clients are cut (socket.ts).
// Limits: one app serves the subsystems it is given; it does not check Host or Accept headers.
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { InvalidArgumentError } from '../../errors.js';
import { callDefinitions, PLUGIN_CONTENT_TYPE, SPEC, type IpamDriverCalls, type NetworkDriverCalls, type Subsystem } from '../../../plugin-spec/index.js';
import { pluginErrorHandler, pluginNotFoundHandler } from './errors.js';
import { clientErrorHandler } from '../errors.js';
import type { DaemonMetrics } from '../metrics.js';
import { limitedServer, PLUGIN_LIMITS, type SocketLimits } from '../socket.js';

type CallMap = Record<string, { request: unknown; reply: unknown }>;

/** One function per call of a subsystem, typed with the plugin-spec types. */
export type Handlers<C extends { [K in keyof C]: { request: unknown; reply: unknown } }> = {
  [K in keyof C]: (request: C[K]['request'], log: FastifyBaseLogger) => C[K]['reply'] | Promise<C[K]['reply']>;
};

export interface PluginAppOptions {
  logger: Logger;
  /** The subsystems served by this app (and announced by Plugin.Activate), with their handlers. */
  handlers: { IpamDriver?: Handlers<IpamDriverCalls>; NetworkDriver?: Handlers<NetworkDriverCalls> };
  /** Also validate every 200 reply against its schema and fail the call if it does not match (tests). */
  checkReplies?: boolean;
  metrics?: DaemonMetrics;
  limits?: SocketLimits;
}

/** Counts and times each call by method (unknown paths under one label), and errors by class. */
function addMetrics(app: FastifyInstance, metrics: DaemonMetrics): void {
  app.addHook('onResponse', async (req, reply) => {
    const method = req.routeOptions.url?.slice(1) ?? 'unknown';
    metrics.pluginCalls.inc({ method, result: reply.statusCode < 400 ? 'ok' : 'error' });
    metrics.pluginSeconds.observe({ method }, reply.elapsedTime / 1000);
  });
  app.addHook('onError', async (_req, _reply, err) => metrics.countError('plugin', err));
}

/** Parses a body of any content type: nothing (or only whitespace) means no arguments. */
function parseBody(_req: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void {
  const text = body.toString();
  if (text.trim() === '') return done(null, undefined);
  try {
    done(null, JSON.parse(text));
  } catch (err) {
    done(new InvalidArgumentError('body', `is not JSON: ${(err as Error).message}`));
  }
}

function refOf(subsystem: keyof typeof SPEC, definition: string): string {
  return `${SPEC[subsystem].$id}#/definitions/${definition}`;
}

function addCalls(app: FastifyInstance, subsystem: Subsystem, handlers: Handlers<CallMap>, checkReplies: boolean): void {
  for (const call of Object.keys(SPEC[subsystem].properties)) {
    const handler = handlers[call];
    if (!handler) throw new Error(`${subsystem}.${call}: no handler`);
    const [request, reply] = callDefinitions(SPEC[subsystem], call);
    app.post(`/${subsystem}.${call}`, {
      schema: { body: { $ref: refOf(subsystem, request) } },
      config: { replyRef: checkReplies ? refOf(subsystem, reply) : undefined },
    }, async (req) => (await handler(req.body, req.log)) ?? {});
  }
}

export async function buildPluginApp(opts: PluginAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger as FastifyBaseLogger,
    // The engine keeps connections alive; close() must not wait for them.
    forceCloseConnections: true,
    // fastify's default coerces types (0 would pass as "0"): the wire's types are exact.
    ajv: { customOptions: { allowUnionTypes: true, coerceTypes: false } },
    ...limitedServer(opts.limits ?? PLUGIN_LIMITS),
    clientErrorHandler: clientErrorHandler((_status, message) => ({ Err: message })),
    frameworkErrors: pluginErrorHandler,
  });
  if (opts.metrics) addMetrics(app, opts.metrics);
  app.setErrorHandler(pluginErrorHandler);
  app.setNotFoundHandler(pluginNotFoundHandler);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, parseBody);
  for (const doc of Object.values(SPEC)) app.addSchema(doc);

  app.addHook('onRequest', async (req) => {
    // An empty Content-Type header would be refused before the catch-all parser runs.
    if (req.headers['content-type'] === '') delete req.headers['content-type'];
  });
  app.addHook('preValidation', async (req) => {
    if (req.body === undefined) req.body = {};
  });
  app.addHook('preSerialization', async (req, reply, payload) => {
    const ref = (req.routeOptions.config as { replyRef?: string }).replyRef;
    if (ref === undefined || reply.statusCode !== 200) return payload;
    const validate = req.compileValidationSchema({ $ref: ref });
    if (!validate(payload)) {
      const first = validate.errors?.[0];
      throw new Error(`reply of ${req.url} does not match ${ref}: ${first?.instancePath || '/'} ${first?.message ?? ''}`);
    }
    return payload;
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('content-type', PLUGIN_CONTENT_TYPE);
    // The engine fails to decode an empty 200 body: always send at least {}.
    return payload === undefined || payload === null || payload === '' ? '{}' : payload;
  });

  const served = (Object.keys(opts.handlers) as Subsystem[]).filter((s) => opts.handlers[s] !== undefined);
  app.post('/Plugin.Activate', { schema: { body: { $ref: refOf('Plugin', 'EmptyRequest') } } }, async () => ({ Implements: served }));
  for (const subsystem of served) addCalls(app, subsystem, opts.handlers[subsystem] as unknown as Handlers<CallMap>, opts.checkReplies ?? false);
  return app;
}
