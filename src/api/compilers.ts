// fastify's compilers for the management API's route schemas: request validators (ajv) and
// response serializers (fast-json-stringify). In the bundle most come compiled at build time
// (precompiled.ts); the others — every one from the sources — are compiled when their route first
// uses them, the compiler packages loaded then too. Limits: a precompiled table is trusted to
// match the routes it was made from (both come from the same sources; the bundle is rebuilt when
// one changes).
import { createRequire } from 'node:module';
import type SerializerSelectorModule from '@fastify/fast-json-stringify-compiler';
import type ValidatorSelectorModule from '@fastify/ajv-compiler';
import { PRECOMPILED, type Precompiled, type Validate } from './precompiled.js';

type SerializerFactory = ReturnType<typeof SerializerSelectorModule>;
type ValidatorFactory = ReturnType<typeof ValidatorSelectorModule>;
export interface ManagementCompilers { buildValidator: ValidatorFactory; buildSerializer: SerializerFactory }
type Route = { method: string; url: string; httpPart?: string; httpStatus?: string };

// Loaded when a schema is compiled at run time: with no table (the sources), when the API is
// built (not on its first request's path); with one (the bundle), only if it misses a route.
const load = createRequire(import.meta.url);
const serializerSelector = (): SerializerFactory => (load('@fastify/fast-json-stringify-compiler') as typeof SerializerSelectorModule)();
const validatorSelector = (): ValidatorFactory => (load('@fastify/ajv-compiler') as typeof ValidatorSelectorModule)();

/**
 * ajv's options for the request validators. Without ajv's check of each schema against its
 * meta-schema: compiling the meta-schema was ~0.13 s of a fresh daemon's CPU, on the path of its
 * first requests (a lab's); test/unit/management-api.test.ts checks the route schemas instead.
 * Without ajv's optimizer: a validator compiled at run time is compiled on a request's path, and
 * the optimizer's passes were ~40% of a compile (they only trim generated code).
 */
export const MANAGEMENT_AJV_OPTIONS = { removeAdditional: false, coerceTypes: false, validateSchema: false, code: { optimize: false } } as const;

/** The key of a route's validator (its part) or serializer (its status) in a Precompiled table. */
export function schemaKey(route: Route): string {
  return `${route.method} ${route.url} ${route.httpPart ?? route.httpStatus}`;
}

/**
 * Answers whose serializers are compiled right after the daemon listens, one per turn of the event
 * loop, when they were not precompiled: a fresh daemon's first connect (the first endpoint) would
 * pay for Endpoint#'s otherwise.
 */
const WARM_AFTER_START = new Set(['POST /v1/networks/:ref/connect 201', 'POST /v1/sandboxes 201', 'POST /v1/networks 201']);
const warmed = (r: Route, part: boolean): boolean => (part ? [...WARM_AFTER_START].some((k) => k.startsWith(`${r.method} ${r.url} `)) : WARM_AFTER_START.has(schemaKey(r)));

/**
 * Response serializers: the precompiled one, else compiled when its route first answers with that
 * status (compiling the ~150 of them at start took ~0.4 s of CPU, and a lab's daemon uses a
 * handful). Those of WARM_AFTER_START are queued on warm.
 */
function serializers(table: Precompiled['serializers'], warm: (() => void)[], selector?: SerializerFactory): SerializerFactory {
  return (...factoryArgs) => (route) => {
    const ready = table[schemaKey(route as Route)];
    if (ready) return ready;
    let serialize: ((data: unknown) => string) | undefined;
    const compiled = (): ((data: unknown) => string) => (serialize ??= (selector ??= serializerSelector())(...factoryArgs)(route));
    if (warmed(route as Route, false)) warm.push(() => void compiled());
    return (data: unknown) => compiled()(data);
  };
}

/**
 * Request validators, likewise: the precompiled one, else compiled (and ajv made) when its route
 * first validates; those of WARM_AFTER_START's routes are queued on warm. fastify reads `errors`
 * from the function it called.
 */
function validators(table: Precompiled['validators'], warm: (() => void)[], selector?: ValidatorFactory): ValidatorFactory {
  return (...factoryArgs) => {
    let compiler: ReturnType<ValidatorFactory> | undefined;
    return (route) => {
      const ready = table[schemaKey(route as Route)];
      if (ready) return ready as never;
      let validate: Validate | undefined;
      const compiled = (): Validate => (validate ??= (compiler ??= (selector ??= validatorSelector())(...factoryArgs))(route) as Validate);
      if (warmed(route as Route, true)) warm.push(() => void compiled());
      const lazy: Validate = (data: unknown) => {
        const v = compiled();
        const result = v(data);
        lazy.errors = v.errors;
        return result;
      };
      return lazy as never;
    };
  };
}

/** The management API's compilers: table's (by default the bundle's) where it has the route, else at run time. */
export function managementCompilers(warm: (() => void)[], table: Precompiled | undefined = PRECOMPILED): ManagementCompilers {
  if (table) return { buildValidator: validators(table.validators, warm), buildSerializer: serializers(table.serializers, warm) };
  return { buildValidator: validators({}, warm, validatorSelector()), buildSerializer: serializers({}, warm, serializerSelector()) };
}
