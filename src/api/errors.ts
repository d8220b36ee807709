// The one place where errors become HTTP replies: CnmkitError classes map to their status, schema
// validation failures to 400 naming the field, fastify's own refusals (unknown route, bad JSON,
// body too large, unsupported media type, a client too slow or speaking bad HTTP, a path the router
// refuses) to cnmkit codes,
// anything else to 500 (logged with its stack). Every error reply is {error, code[, field]}.
import http from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { CnmkitError, STATUS, type ErrorClass } from '../errors.js';

export interface ErrorBody {
  error: string;
  code: string;
  field?: string;
}

/** cnmkit's codes for the statuses fastify and node answer by themselves. */
const HTTP_CODES: Record<number, string> = {
  400: 'ERR_INVALID_ARGUMENT',
  404: 'ERR_NOT_FOUND',
  405: 'ERR_METHOD_NOT_ALLOWED',
  408: 'ERR_REQUEST_TIMEOUT',
  413: 'ERR_BODY_TOO_LARGE',
  414: 'ERR_URI_TOO_LONG',
  415: 'ERR_UNSUPPORTED_MEDIA_TYPE',
  431: 'ERR_HEADERS_TOO_LARGE',
};

/** Status and body for any thrown value; the Docker plugin API reuses them with its own keys. */
export function toReply(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof CnmkitError) {
    return { status: err.status, body: { error: err.message, code: err.code, ...(err.field ? { field: err.field } : {}) } };
  }
  if (err instanceof AggregateError) {
    return { status: 500, body: { error: err.message, code: (err as { code?: string }).code ?? 'ERR_INTERNAL' } };
  }
  const fe = err as FastifyError;
  if (fe && fe.validation) {
    const v = fe.validation[0];
    const field = v ? (v.instancePath.replace(/^\//, '').replace(/\//g, '.') || (v.params as { missingProperty?: string }).missingProperty || fe.validationContext || 'body') : 'body';
    return { status: 400, body: { error: `${field}: ${v?.message ?? fe.message}`, code: 'ERR_INVALID_ARGUMENT', field } };
  }
  // The router's refusals of a path (given to the apps' frameworkErrors): its message repeats the whole path.
  if (fe?.code === 'FST_ERR_BAD_URL') return { status: 400, body: { error: 'path: is not a valid URL (bad percent-encoding)', code: 'ERR_INVALID_ARGUMENT', field: 'path' } };
  if (fe?.code === 'FST_ERR_MAX_PARAM_LENGTH') return { status: 414, body: { error: 'path: a name or id in it is longer than 100 characters', code: 'ERR_URI_TOO_LONG', field: 'path' } };
  if (fe && typeof fe.statusCode === 'number' && fe.statusCode < 500) {
    const status = fe.statusCode;
    const code = HTTP_CODES[status] ?? 'ERR_BAD_REQUEST';
    // fastify's 400s are about the body as a whole (not JSON, empty, bad length).
    return { status, body: { error: status === 400 ? `body: ${fe.message}` : fe.message, code, ...(status === 400 ? { field: 'body' } : {}) } };
  }
  return { status: 500, body: { error: (err as Error)?.message ?? String(err), code: 'ERR_INTERNAL' } };
}

/** The class an error counts under in metrics: the CnmkitError's own, else the one of its status. */
export function errorClassOf(err: unknown): ErrorClass {
  if (err instanceof CnmkitError) return err.errorClass;
  const status = toReply(err).status;
  const known = (Object.entries(STATUS) as [ErrorClass, number][]).find(([, s]) => s === status);
  return known ? known[0] : status < 500 ? 'bad-request' : 'internal';
}

export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = toReply(err);
  if (status >= 500) request.log.error({ err }, 'request failed');
  else request.log.info({ code: body.code, error: body.error }, 'request refused');
  void reply.status(status).send(body);
}

/** Unknown routes answer in the same shape as every other error. */
export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  void reply.status(404).send({ error: `no such route: ${request.method} ${request.url.split('?')[0]}`, code: 'ERR_NOT_FOUND' } satisfies ErrorBody);
}

/** What node reports before fastify sees a request: a client too slow, bad HTTP, huge headers. */
export function clientErrorReply(err: NodeJS.ErrnoException): { status: number; message: string } {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return { status: 408, message: 'the request was not received in time' };
  if (err.code === 'HPE_HEADER_OVERFLOW') return { status: 431, message: 'the request headers are too large' };
  return { status: 400, message: `malformed HTTP request (${err.code ?? 'parse error'})` };
}

/**
 * A fastify clientErrorHandler that answers with render's body (then closes the connection, as
 * node does); a connection already reset gets nothing. When bad bytes follow a good request on the
 * same connection, the good one is being handled: its answer goes first (cutting it would leave its
 * effect done and unknown to the client), then the refusal.
 */
export function clientErrorHandler(render: (status: number, message: string) => object) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const { status, message } = clientErrorReply(err);
    const body = JSON.stringify(render(status, message));
    let done = false;
    const refuse = (): void => {
      if (done) return;
      done = true;
      if (socket.writable) {
        socket.write(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
          `Content-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
      }
      socket.destroy();
    };
    // node's own field: the response the connection is writing, while a request is in flight. A
    // request not fully received (too slow, or the bad bytes are its own) is refused at once.
    const inFlight = (socket as Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage;
    if (inFlight && !inFlight.writableFinished && inFlight.req?.complete === true && err.code !== 'ERR_HTTP_REQUEST_TIMEOUT') {
      inFlight.once('finish', refuse);
      inFlight.once('close', refuse);
      return;
    }
    refuse();
  };
}

/** The management API's body for a client error. */
export function managementClientError(status: number, message: string): ErrorBody {
  return { error: message, code: HTTP_CODES[status] ?? 'ERR_BAD_REQUEST' };
}
