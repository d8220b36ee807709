// Child of cluster.test.ts: loads the daemon's modules as a daemon without --cluster-store does,
// then cluster mode's, and prints how many of cluster mode's etcd modules (its client, gateway,
// lease and watch) were loaded after each step. A module loader hook reports every module loaded.
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';

const loaded: string[] = [];
const { port1, port2 } = new MessageChannel();
port1.on('message', (url: string) => loaded.push(url));
port1.unref();
const hooks = 'let port; export function initialize(d) { port = d.port; } export async function load(url, context, next) { port.postMessage(url); return next(url, context); }';
register(`data:text/javascript,${encodeURIComponent(hooks)}`, { data: { port: port2 }, transferList: [port2] });
/** The hook's messages arrive on this thread's event loop: let them in before counting. */
const etcdModules = async () => {
  await new Promise((resolve) => setTimeout(resolve, 50));
  return loaded.filter((url) => /\/src\/cluster\/(client|gateway|lease|watch)\.ts$/.test(url)).length;
};
await import('../../src/daemon.js');
await import('../../src/cli/commands/daemon.js');
await import('../../src/api/management.js');
const without = await etcdModules();
await import('../../src/cluster/index.js');
console.log(JSON.stringify({ without, with: await etcdModules() }));
