// Child process of ipam-concurrency.test.ts: opens the store at argv[2], says "ready", waits for a
// line on stdin, then requests argv[4] addresses from pool argv[3] as fast as it can and prints
// them as one JSON array.
import readline from 'node:readline';
import { openStore } from '../../src/store/index.js';
import { Ipam } from '../../src/ipam/index.js';

const [dir, poolId, count, owner] = process.argv.slice(2);
if (!dir || !poolId || !count || !owner) throw new Error('usage: ipam-concurrent-child STATE_DIR POOL_ID COUNT OWNER');
const store = openStore(dir);
const ipam = new Ipam(store, { environment: { linkRoutes: () => [], nameservers: () => [] } });
ipam.listPools();
process.stdout.write('ready\n');
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) if (line === 'go') break;
const got: string[] = [];
for (let i = 0; i < Number(count); i++) got.push(ipam.requestAddress(poolId, { kind: 'endpoint', owner: `${owner}-${i}` }));
process.stdout.write(`${JSON.stringify(got)}\n`);
store.close();
process.exit(0);
