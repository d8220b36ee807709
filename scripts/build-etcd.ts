// Build step for etcd3 (cluster mode's client): its .proto read at build time, so that the bundle
// does not parse it at every start. Used by scripts/build.ts; the unit test compares the result.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Plugin } from 'esbuild';

/**
 * etcd3, bundled with gRPC, with its .proto read here rather than at every start: etcd3 parses
 * proto/rpc.proto with @grpc/proto-loader when it is loaded (the parser and the parse: ~0.1-0.2 s
 * of a cluster-mode start). Its one call `loadSync(rpc.proto, options)` becomes proto-loader's
 * `fromJSON(json, options)` on the same proto read now into protobufjs JSON (by the protobufjs
 * that proto-loader uses): the same package definition, without the parser. etcd3 has no option
 * for it; its file is left as it is in node_modules (the bundle has the changed copy).
 */
export const ETCD_LOAD = '(0, proto_loader_1.loadSync)(`${__dirname}/../proto/rpc.proto`, {';

/**
 * proto-loader (the copy etcd3 uses) describes every message of the package definition for
 * reflection as it makes it: each message's DescriptorProto as an object and every file's
 * FileDescriptorProto encoded (~60 ms of protobufjs code generation and encoding at every start).
 * gRPC clients never read them (only paths, streaming flags and the (de)serializers); in the
 * bundle each is made when first read instead (getters, memoized): the same values, later.
 */
export const LOADER_EAGER: [string, string][] = [
  [
    "    const descriptorList = root.toDescriptor('proto3').file;\n    const bufferList = descriptorList.map(value => Buffer.from(descriptor.FileDescriptorProto.encode(value).finish()));",
    "    let files;\n    const bufferList = () => (files !== null && files !== void 0 ? files : (files = root.toDescriptor('proto3').file.map(value => Buffer.from(descriptor.FileDescriptorProto.encode(value).finish()))));",
  ],
  [
    "    const messageDescriptor = message.toDescriptor('proto3');\n    return {\n        format: 'Protocol Buffer 3 DescriptorProto',\n        type: messageDescriptor.$type.toObject(messageDescriptor, descriptorOptions),\n        fileDescriptorProtos: fileDescriptors,\n    };",
    "    let type;\n    return {\n        format: 'Protocol Buffer 3 DescriptorProto',\n        get type() {\n            if (type === undefined) {\n                const messageDescriptor = message.toDescriptor('proto3');\n                type = messageDescriptor.$type.toObject(messageDescriptor, descriptorOptions);\n            }\n            return type;\n        },\n        get fileDescriptorProtos() { return fileDescriptors(); },\n    };",
  ],
  [
    "    const enumDescriptor = enumType.toDescriptor('proto3');\n    return {\n        format: 'Protocol Buffer 3 EnumDescriptorProto',\n        type: enumDescriptor.$type.toObject(enumDescriptor, descriptorOptions),\n        fileDescriptorProtos: fileDescriptors,\n    };",
    "    let type;\n    return {\n        format: 'Protocol Buffer 3 EnumDescriptorProto',\n        get type() {\n            if (type === undefined) {\n                const enumDescriptor = enumType.toDescriptor('proto3');\n                type = enumDescriptor.$type.toObject(enumDescriptor, descriptorOptions);\n            }\n            return type;\n        },\n        get fileDescriptorProtos() { return fileDescriptors(); },\n    };",
  ],
];

/** proto-loader's index.js with its reflection descriptors made on first read (the build fails if its text changed). */
export function lazyLoaderText(file: string): string {
  let text = fs.readFileSync(file, 'utf8');
  for (const [from, to] of LOADER_EAGER) {
    if (!text.includes(from)) throw new Error(`build: ${file} no longer makes its descriptors with:\n${from}`);
    text = text.replace(from, to);
  }
  return text;
}

export const etcdProto: Plugin = {
  name: 'etcd3-proto',
  setup(b) {
    b.onLoad({ filter: /node_modules[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const text = fs.readFileSync(args.path, 'utf8');
      if (!text.includes(ETCD_LOAD)) throw new Error(`build: ${args.path} no longer loads its proto with ${ETCD_LOAD}`);
      const json = JSON.stringify(etcdProtoJson(path.join(path.dirname(args.path), '../proto/rpc.proto')));
      return { contents: `const __etcdRpcProto = ${json};\n${text.replace(ETCD_LOAD, '(0, proto_loader_1.fromJSON)(__etcdRpcProto, {')}`, loader: 'js' };
    });
    // Only the copy etcd3 resolves (gRPC's own nested copy, for its admin services, is left alone).
    const etcdLoader = etcdLoaderIndex();
    b.onLoad({ filter: /node_modules[\\/]@grpc[\\/]proto-loader[\\/]build[\\/]src[\\/]index\.js$/ }, (args) =>
      (path.resolve(args.path) === etcdLoader ? { contents: lazyLoaderText(args.path), loader: 'js' } : undefined));
  },
};

/** The index.js of the @grpc/proto-loader that etcd3 requires. */
export function etcdLoaderIndex(): string {
  const etcdRequire = createRequire(createRequire(import.meta.url).resolve('etcd3'));
  return path.resolve(etcdRequire.resolve('@grpc/proto-loader'));
}

/** The proto as protobufjs JSON, parsed as proto-loader parses it (keepCase, imports beside it). */
export function etcdProtoJson(file: string): unknown {
  const loaderRequire = createRequire(createRequire(file).resolve('@grpc/proto-loader'));
  const { Root } = loaderRequire('protobufjs') as typeof import('protobufjs');
  const parsed = new Root().loadSync(file, { keepCase: true });
  parsed.resolveAll();
  return parsed.toJSON();
}
