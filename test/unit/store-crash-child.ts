// Child process of store-crash.test.ts: performs CNM-like operations on the store at argv[2], one
// transaction each, printing each committed step number, until it is killed. Group i is a network,
// a sandbox, an endpoint joining them and its address; step i also deletes group i-10 when i % 10 is 0.
import { openStore } from '../../src/store/index.js';
import { Ipam } from '../../src/ipam/index.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: store-crash-child STATE_DIR');
const store = openStore(dir);
const ipam = new Ipam(store, { environment: { linkRoutes: () => [], nameservers: () => [] } });
const { poolId } = await ipam.requestPool({ addressSpace: 'LocalDefault', pool: '10.77.0.0/16' });
const created = new Date().toISOString();
const padding = 'x'.repeat(2048);

function deleteGroup(j: number): void {
  const ep = store.endpoints.get(`e-${j}`);
  if (ep?.ipv4) ipam.releaseAddress(poolId, ep.ipv4);
  store.endpoints.delete(`e-${j}`);
  store.networks.delete(`n-${j}`);
  store.sandboxes.delete(`s-${j}`);
}

function step(i: number): void {
  store.tx(() => {
    store.networks.put({ id: `n-${i}`, name: `net-${i}`, driver: 'bridge', scope: 'local', internal: false, enableIPv6: false, options: {}, labels: {}, config: { padding }, ipv4: [], ipv6: [], state: 'creating', created });
    store.sandboxes.put({ id: `s-${i}`, name: `sb-${i}`, kind: 'named', netnsPath: `/run/netns/sb-${i}`, labels: {}, state: 'creating', created });
    const ipv4 = ipam.requestAddress(poolId, { kind: 'endpoint', owner: `e-${i}` });
    store.endpoints.put({ id: `e-${i}`, networkId: `n-${i}`, sandboxId: `s-${i}`, name: 'eth0', ipv4, ports: [], driverData: { padding }, state: 'ready', created });
    store.setState('network', `n-${i}`, 'ready');
    store.setState('sandbox', `s-${i}`, 'ready');
    if (i >= 10 && i % 10 === 0) deleteGroup(i - 10);
  });
}

const first = Math.max(-1, ...store.networks.list().map((n) => Number(n.id.slice(2)))) + 1;
for (let i = first; ; i++) {
  step(i);
  process.stdout.write(`${i}\n`);
}
