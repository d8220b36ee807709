// The management API's request validators and response serializers compiled at build time, by
// route: none here, so that from the sources each is compiled at run time (compilers.ts). The
// bundle replaces this module with the table scripts/build-schemas.ts generates from the routes.

/** fastify's view of a validator: the result, and ajv's errors of the last call. */
export type Validate = ((data: unknown) => boolean) & { errors?: unknown };

export interface Precompiled {
  /** By "METHOD URL PART" (PART: body, params, querystring, headers). */
  validators: Readonly<Record<string, Validate>>;
  /** By "METHOD URL STATUS". */
  serializers: Readonly<Record<string, (data: unknown) => string>>;
}

export const PRECOMPILED: Precompiled | undefined = undefined;
