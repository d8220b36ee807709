// Child of cluster.test.ts: loads the daemon's modules as a daemon without --cluster-store does,
// then cluster mode's, and prints how many etcd/gRPC modules were loaded after each step.
import Module from 'node:module';

const cache = (Module as unknown as { _cache: Record<string, unknown> })._cache;
const etcdModules = () => Object.keys(cache).filter((p) => /node_modules\/(etcd3|@grpc)\//.test(p)).length;
await import('../../src/daemon.js');
await import('../../src/cli/commands/daemon.js');
await import('../../src/api/management.js');
const without = etcdModules();
await import('../../src/cluster/index.js');
console.log(JSON.stringify({ without, with: etcdModules() }));
