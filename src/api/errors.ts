// The one place where errors become HTTP replies: CnmkitError classes map to their status, schema
// validation failures to 400 naming the field, anything else to 500 (logged with its stack).
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { CnmkitError } from '../errors.js';

export interface ErrorBody {
  error: string;
  code: string;
  field?: string;
}

/** Status and body for any thrown value; `format` lets the Docker plugin API use its own key. */
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
  if (fe && typeof fe.statusCode === 'number' && fe.statusCode < 500) {
    return { status: fe.statusCode, body: { error: fe.message, code: fe.code ?? 'ERR_BAD_REQUEST' } };
  }
  return { status: 500, body: { error: (err as Error)?.message ?? String(err), code: 'ERR_INTERNAL' } };
}

export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = toReply(err);
  if (status >= 500) request.log.error({ err }, 'request failed');
  else request.log.info({ code: body.code, error: body.error }, 'request refused');
  void reply.status(status).send(body);
}
