// Child of detached.test.ts, run inside a throwaway namespace that stands for the process's own:
// applies a JoinInfo whose link was born in another namespace (the daemon's, argv[2]) into a
// sandbox (argv[3]) with a route that cannot be added, so the applier must move the link back.
// Prints the applier's error; exits 0 when it failed as meant, 1 when it succeeded.
import { applyJoinInfo } from '../../src/controller/apply.js';
import type { SandboxRecord } from '../../src/core/model.js';
import { NetlinkHandlePool, type NetlinkHandle } from '../../src/netlink/index.js';

const [daemonNs, sandboxNs, link] = process.argv.slice(2) as [string, string, string];

/** A pool whose "host" is the daemon's namespace, as a daemon's context bound to a namespace it does not run in. */
class DaemonPool extends NetlinkHandlePool {
  override get(nsPath?: string): NetlinkHandle {
    return super.get(nsPath ?? daemonNs);
  }
}

const pool = new DaemonPool();
const sb: SandboxRecord = { id: 'child', name: 'child', kind: 'path', netnsPath: sandboxNs, labels: {}, state: 'ready', created: new Date().toISOString() };
try {
  await applyJoinInfo(pool, sb, {
    src: { name: link, where: 'host' }, dstName: 'eth0', ipv4: '198.18.242.2/24',
    // The next hop is on no link of the sandbox: the kernel refuses the route (ENETUNREACH).
    routes: [{ destination: '198.18.243.0/24', nextHop: '198.18.244.1' }], noGateway: true, ipv6Enabled: false,
  }, { fresh: true });
  console.log('applied');
  process.exitCode = 1;
} catch (err) {
  console.log(`failed: ${(err as Error).message}`);
} finally {
  pool.closeAll();
}
