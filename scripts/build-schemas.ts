// Schemas compiled at build time, for the bundle (scripts/build.ts): the lab's topology validators
// (ajv standalone code) and the management API's request validators and response serializers
// (ajv and fast-json-stringify standalone code, recorded route by route while fastify builds the
// API from the sources). The bundle then neither loads nor runs those compilers for them; the
// sources keep compiling at run time (src/lab/schema-validators.ts, src/api/compilers.ts), and
// test/unit/precompiled-schemas.test.ts holds both to the same answers.
import path from 'node:path';
import type { Plugin } from 'esbuild';
import pino from 'pino';
import { Ajv } from 'ajv';
import standalone from 'ajv/dist/standalone/index.js';
import SerializerSelector from '@fastify/fast-json-stringify-compiler';
import ValidatorSelector, { AjvReference } from '@fastify/ajv-compiler';
import { AJV_OPTIONS, SCHEMAS } from '../src/lab/schema-validators.js';
import { buildManagementApi } from '../src/api/management.js';
import { schemaKey, type ManagementCompilers } from '../src/api/compilers.js';
import { DaemonMetrics } from '../src/api/metrics.js';

type StandaloneCode = (ajv: Ajv, refsOrFunc?: unknown) => string;
const standaloneCode = ((standalone as unknown as { default?: StandaloneCode }).default ?? standalone) as unknown as StandaloneCode;

/** Generated code requires ajv's and fast-json-stringify's small run-time helpers by name. */
const PREAMBLE = "import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\n";

/** The module src/lab/schema-validators.ts stands for in the bundle: validatorFor(format), compiled. */
export function labValidatorsCode(): string {
  const ajv = new Ajv({ ...AJV_OPTIONS, code: { ...AJV_OPTIONS.code, source: true, esm: true } });
  for (const [format, schema] of Object.entries(SCHEMAS)) ajv.addSchema(schema, format);
  const code = standaloneCode(ajv, Object.fromEntries(Object.keys(SCHEMAS).map((f) => [f, f])));
  return `${PREAMBLE}${code}\nconst VALIDATORS = { ${Object.keys(SCHEMAS).join(', ')} };\nexport function validatorFor(format) { return VALIDATORS[format]; }\n`;
}

/** A CommonJS module's text as an expression of its exports. */
const commonJs = (code: string): string => `(() => { const module = { exports: {} }; ${code}\n; return module.exports; })()`;

/** Every route of the management API with all its optional parts, built with compilers that record each schema's code. */
async function recordManagementSchemas(): Promise<{ validators: Map<string, string>; serializers: Map<string, string> }> {
  const validators = new Map<string, string>();
  const serializers = new Map<string, string>();
  const compilers: ManagementCompilers = {
    buildValidator: (externalSchemas, options) => {
      const custom = (options?.customOptions ?? {}) as { code?: object };
      const compile = ValidatorSelector()(externalSchemas, { ...options, customOptions: { ...custom, code: { ...custom.code, source: true } } } as never);
      const { ajv } = (compile as unknown as Record<symbol, { ajv: Ajv }>)[AjvReference as unknown as symbol]!;
      return (route) => {
        const validate = compile(route);
        validators.set(schemaKey(route as never), standaloneCode(ajv, validate));
        return validate;
      };
    },
    buildSerializer: (externalSchemas, options) => {
      const compile = SerializerSelector()(externalSchemas, { ...options, mode: 'standalone' } as never);
      return (route) => {
        const code = compile(route) as unknown as string;
        serializers.set(schemaKey(route as never), code);
        return new Function('require', 'module', code) as never;
      };
    },
  };
  const stub = {} as never;
  const app = await buildManagementApi({
    controller: stub, logger: pino({ level: 'silent' }), reloadFirewall: stub, metrics: new DaemonMetrics(), health: stub, cluster: stub, links: stub, netlink: stub, compilers,
  });
  await app.ready();
  await app.close();
  return { validators, serializers };
}

/** The module src/api/precompiled.ts stands for in the bundle: PRECOMPILED, each distinct code once. */
export async function managementSchemasCode(): Promise<string> {
  const { validators, serializers } = await recordManagementSchemas();
  const codes: string[] = [];
  const index = (code: string): number => (codes.includes(code) ? codes.indexOf(code) : codes.push(code) - 1);
  const table = (m: Map<string, string>): string => `{\n${[...m].sort(([a], [b]) => a.localeCompare(b)).map(([k, code]) => `  ${JSON.stringify(k)}: C[${index(code)}],`).join('\n')}\n}`;
  const v = table(validators);
  const s = table(serializers);
  return `${PREAMBLE}const C = [\n${codes.map(commonJs).join(',\n')}\n];\nexport const PRECOMPILED = { validators: ${v}, serializers: ${s} };\n`;
}

/** esbuild: the two modules above in place of their run-time versions. */
export function precompiledSchemas(root: string): Plugin {
  return {
    name: 'precompiled-schemas',
    setup(b) {
      b.onLoad({ filter: /[\\/]src[\\/]lab[\\/]schema-validators\.ts$/ }, () => ({ contents: labValidatorsCode(), loader: 'js', resolveDir: path.join(root, 'src/lab') }));
      b.onLoad({ filter: /[\\/]src[\\/]api[\\/]precompiled\.ts$/ }, async () => ({ contents: await managementSchemasCode(), loader: 'js', resolveDir: path.join(root, 'src/api') }));
    },
  };
}

/** Files the generated modules are made from that the bundle no longer imports (build.json lists them). */
export const PRECOMPILED_FROM = ['src/lab/topology.schema.json', 'src/lab/clab.schema.json'];
