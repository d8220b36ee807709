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
export const etcdProto: Plugin = {
  name: 'etcd3-proto',
  setup(b) {
    b.onLoad({ filter: /node_modules[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const text = fs.readFileSync(args.path, 'utf8');
      if (!text.includes(ETCD_LOAD)) throw new Error(`build: ${args.path} no longer loads its proto with ${ETCD_LOAD}`);
      const json = JSON.stringify(etcdProtoJson(path.join(path.dirname(args.path), '../proto/rpc.proto')));
      return { contents: `const __etcdRpcProto = ${json};\n${text.replace(ETCD_LOAD, '(0, proto_loader_1.fromJSON)(__etcdRpcProto, {')}`, loader: 'js' };
    });
  },
};

/** The proto as protobufjs JSON, parsed as proto-loader parses it (keepCase, imports beside it). */
export function etcdProtoJson(file: string): unknown {
  const loaderRequire = createRequire(createRequire(file).resolve('@grpc/proto-loader'));
  const { Root } = loaderRequire('protobufjs') as typeof import('protobufjs');
  const parsed = new Root().loadSync(file, { keepCase: true });
  parsed.resolveAll();
  return parsed.toJSON();
}
