// The bundle's etcd3 loads its gRPC services from the proto read at build time
// (scripts/build-etcd.ts): the package definition must be the one etcd3 makes from the .proto
// itself, method by method, and encode and decode the same bytes.
import Module, { createRequire } from 'node:module';
import path from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { ETCD_LOAD, etcdLoaderIndex, etcdProto, etcdProtoJson, lazyLoaderText } from '../../scripts/build-etcd.js';

const etcdRequire = createRequire(createRequire(import.meta.url).resolve('etcd3'));
const loader = etcdRequire('@grpc/proto-loader') as typeof import('@grpc/proto-loader');
const file = etcdRequire.resolve('../proto/rpc.proto');
/** The options etcd3 passes to loadSync. */
const OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

type Method = {
  path: string; requestStream: boolean; responseStream: boolean; originalName: string;
  requestSerialize(v: unknown): Buffer; responseSerialize(v: unknown): Buffer;
  requestDeserialize(b: Buffer): unknown; responseDeserialize(b: Buffer): unknown;
};
const services = (def: Record<string, unknown>) => Object.entries(def).filter(([, v]) => !('format' in (v as object))) as [string, Record<string, Method>][];

describe('etcd3 proto read at build time', () => {
  const fromProto = loader.loadSync(file, OPTIONS) as unknown as Record<string, unknown>;
  const fromJson = loader.fromJSON(etcdProtoJson(file) as Record<string, unknown>, OPTIONS) as unknown as Record<string, unknown>;

  it('gives the same services and messages as parsing the .proto', () => {
    expect(Object.keys(fromJson).sort()).toEqual(Object.keys(fromProto).sort());
    const shape = (def: Record<string, unknown>) => services(def).map(([name, methods]) => [name, Object.entries(methods).map(([m, d]) => [m, d.path, d.requestStream, d.responseStream, d.originalName])]);
    expect(shape(fromJson)).toEqual(shape(fromProto));
    expect(services(fromJson).map(([n]) => n)).toEqual(expect.arrayContaining(['etcdserverpb.KV', 'etcdserverpb.Watch', 'etcdserverpb.Lease']));
  });

  it('encodes requests and decodes replies byte for byte alike (64-bit revisions as strings)', () => {
    const kv = (def: Record<string, unknown>) => (def['etcdserverpb.KV'] as Record<string, Method>).Range!;
    const request = { key: Buffer.from('/cnmkit/v1/peers/'), range_end: Buffer.from('/cnmkit/v1/peers0'), keys_only: true, revision: '9007199254740993' };
    expect(kv(fromJson).requestSerialize(request)).toEqual(kv(fromProto).requestSerialize(request));
    const reply = kv(fromProto).responseSerialize({
      header: { revision: '9007199254740993', cluster_id: '18446744073709551615' },
      kvs: [{ key: Buffer.from('k'), value: Buffer.from('{"ip":"198.18.0.2"}'), create_revision: '5', mod_revision: '7', version: '2', lease: '694d8a5e0e1c3b01' }],
      count: '1',
    });
    const decoded = kv(fromJson).responseDeserialize(reply) as { header: { revision: string } };
    expect(decoded).toEqual(kv(fromProto).responseDeserialize(reply));
    expect(decoded.header.revision).toBe('9007199254740993');
  });

  it('describes messages for reflection when first read, with the same descriptors as proto-loader makes at once', () => {
    // proto-loader's index.js as the bundle has it, loaded as a module of its own beside the original.
    const index = etcdLoaderIndex();
    const m = new Module(index) as Module & { _compile(text: string, file: string): void };
    m.filename = index;
    m.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(path.dirname(index));
    m._compile(lazyLoaderText(index), index);
    const lazyLoader = m.exports as typeof loader;
    const json = etcdProtoJson(file) as Record<string, unknown>;
    const lazy = lazyLoader.fromJSON(json, OPTIONS) as unknown as Record<string, Record<string, unknown>>;
    const eager = fromJson as Record<string, Record<string, unknown>>;
    const described = Object.keys(eager).filter((k) => 'format' in eager[k]!);
    expect(described.length).toBeGreaterThan(50);
    for (const k of described) {
      expect(lazy[k]!.format).toBe(eager[k]!.format);
      expect(lazy[k]!.type).toEqual(eager[k]!.type);
    }
    expect(lazy[described[0]!]!.fileDescriptorProtos).toEqual(eager[described[0]!]!.fileDescriptorProtos);
    const range = (def: Record<string, unknown>) => (def['etcdserverpb.KV'] as Record<string, Method & { requestType: { type: unknown } }>).Range!;
    expect(range(lazy).requestType.type).toEqual(range(eager).requestType.type);
    expect(range(lazy).path).toBe(range(eager).path);
  });

  it('is what the bundle loads: etcd3 calls fromJSON on the inlined proto, not loadSync on the file', async () => {
    const out = await build({
      stdin: { contents: "export { Etcd3 } from 'etcd3';", resolveDir: process.cwd() },
      bundle: true, write: false, format: 'esm', platform: 'node', plugins: [etcdProto], logLevel: 'silent',
    });
    const text = out.outputFiles[0]!.text;
    expect(text).toContain('(0, proto_loader_1.fromJSON)(__etcdRpcProto, {');
    expect(text).not.toContain(ETCD_LOAD);
    // proto-loader's descriptors are made on first read there.
    expect(text).toContain('get fileDescriptorProtos()');
  });
});
