// The one place where errors become Docker plugin replies. Status and message come from the
// management API's toReply (so a CnmkitError reads the same everywhere); the body uses the
// plugin protocol's keys: {"Err"} for NetworkDriver and Plugin calls, {"Err","Error"} for
// IpamDriver calls. A 404 is reserved for "no such call" (the engine treats it as "not
// implemented", and as success for ProgramExternalConnectivity), so not-found errors become 500.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CnmkitError } from '../../errors.js';
import { toReply } from '../errors.js';
import type { ErrorReply } from '../../../plugin-spec/index.js';

/** The subsystem a request path belongs to: "/IpamDriver.RequestPool" → "IpamDriver". */
export function subsystemOf(url: string): string {
  const dot = url.indexOf('.');
  return dot > 1 ? url.slice(1, dot) : '';
}

/** The reply for a failed call on `url`: never 200, never 404, the message under the right key(s). */
export function pluginErrorReply(err: unknown, url: string): { status: number; body: ErrorReply } {
  const { status, body } = toReply(err);
  const message = body.error || body.code;
  const replyStatus = status === 404 || status < 400 ? 500 : status;
  return { status: replyStatus, body: subsystemOf(url) === 'IpamDriver' ? { Err: message, Error: message } : { Err: message } };
}

export function pluginErrorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = pluginErrorReply(err, request.url);
  if (toReply(err).status >= 500) request.log.error({ err }, 'plugin call failed');
  else request.log.info({ code: (err as { code?: string }).code, error: body.Err }, 'plugin call refused');
  void reply.status(status).send(body);
}

/** Unknown paths: 404 is how the engine learns that a call is not implemented. */
export function pluginNotFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  request.log.info({ url: request.url }, 'plugin call not implemented');
  void reply.status(404).send({ Err: `${request.method} ${request.url} is not implemented by this plugin` });
}

/** True for errors that mean "no such object", which teardown calls answer as success. */
export function isNotFound(err: unknown): boolean {
  return err instanceof CnmkitError && err.errorClass === 'not-found';
}
