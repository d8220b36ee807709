// The wire protocol as data: the three JSON Schema documents (draft-07) of Docker's legacy plugin
// protocol as cnmkit speaks it, loaded once, and their TypeScript twins. Nothing here knows fastify.
import ipamDriver from './ipam-driver.schema.json' with { type: 'json' };
import networkDriver from './network-driver.schema.json' with { type: 'json' };
import plugin from './plugin.schema.json' with { type: 'json' };

export * from './types.js';

/** A schema document as stored in plugin-spec/: the root lists the calls, `definitions` their bodies. */
export interface SpecDocument {
  $schema: string;
  $id: string;
  title: string;
  description: string;
  type: 'object';
  properties: Record<string, { description?: string; properties: { request: { $ref: string }; reply: { $ref: string } } }>;
  definitions: Record<string, SchemaNode>;
}

/** Enough of a JSON Schema node for the code and tests that walk these documents. */
export interface SchemaNode {
  description?: string;
  type?: string | string[];
  required?: string[];
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  items?: SchemaNode;
  oneOf?: SchemaNode[];
  enum?: unknown[];
  $ref?: string;
  examples?: unknown[];
  [keyword: string]: unknown;
}

/** The documents by the subsystem name that prefixes their calls' paths (POST /<subsystem>.<call>). */
export const SPEC = {
  Plugin: plugin as unknown as SpecDocument,
  NetworkDriver: networkDriver as unknown as SpecDocument,
  IpamDriver: ipamDriver as unknown as SpecDocument,
} as const;

export type SpecName = keyof typeof SPEC;

/** The content type of every reply (the engine ignores it; this is the customary one). */
export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.1+json';

/** The definition names of a call's request and reply, e.g. ['RequestPoolRequest', 'RequestPoolReply']. */
export function callDefinitions(doc: SpecDocument, call: string): [request: string, reply: string] {
  const entry = doc.properties[call];
  if (!entry) throw new Error(`${doc.$id}: no call ${call}`);
  const name = (ref: string): string => ref.replace(/^#\/definitions\//, '');
  return [name(entry.properties.request.$ref), name(entry.properties.reply.$ref)];
}
