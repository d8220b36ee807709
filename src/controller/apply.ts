// The one applier of JoinInfo: puts the interface a driver described into a sandbox — moved and
// renamed when it was born in the daemon's namespace, MAC and MTU when asked, IPv6 on or off and
// the neighbour solicitation interval (when the driver asks) before it comes up, addresses, up, static routes, and default routes via the gateways unless the
// sandbox has one already. A link moved in is moved back out (with its name) on failure; a link
// born in the sandbox is the driver's to remove (leave). In a fresh sandbox of cnmkit's own with a
// link born there it asks the kernel nothing first (no extra round trip on connect). "The host" is
// the daemon's namespace: the one the pool's default handle is bound to (not necessarily the
// process's own, as with a daemon's context bound to a throwaway namespace in tests).
import { ensureSysctl, runInNetns } from '../netns/index.js';
import { nextIfname } from '../contract/ifname.js';
import { addAddress, addRoute, linkIndex, listRoutes, moveLink, setLink, setLinkUp, setNeighSolicit, type NetlinkHandle, type NetlinkHandlePool } from '../netlink/index.js';
import type { JoinInfo } from '../contract/join.js';
import type { SandboxRecord } from '../core/model.js';
import { withRollback, type Undo } from '../core/steps.js';
import { parseNetwork } from '../ip/index.js';

export interface ApplyOptions {
  /** The sandbox is one of cnmkit's own with no other endpoint: only lo, no routes. */
  fresh: boolean;
}

/** The path of the daemon's namespace: the one the pool's default handle is bound to. */
function daemonNsPath(pool: NetlinkHandlePool): string {
  return pool.get().nsPath ?? '/proc/self/ns/net';
}

/** Where the sandbox's namespace is: its own, or the daemon's for the host sandbox. */
function sandboxNsPath(pool: NetlinkHandlePool, sb: SandboxRecord): string | undefined {
  return sb.kind === 'host' ? pool.get().nsPath : sb.netnsPath;
}

/** Runs write (sysctl files) in the sandbox's namespace, or in the daemon's own when the sandbox is it. */
function inSandboxNs(pool: NetlinkHandlePool, sb: SandboxRecord, write: () => void): void {
  const nsPath = sandboxNsPath(pool, sb);
  if (nsPath === undefined) write();
  else runInNetns(nsPath, write);
}

/**
 * IPv6 on or off on an interface of the sandbox. An interface born in one of cnmkit's own sandboxes
 * has it off already (see ./sandbox-kernel.ts), so only turning it on is written there.
 * Equivalent to: `ip netns exec SB sysctl -w net.ipv6.conf.IFNAME.disable_ipv6=0|1`
 */
function setIPv6(pool: NetlinkHandlePool, sb: SandboxRecord, ifname: string, on: boolean, bornThere: boolean): void {
  if (sb.kind === 'named' && bornThere && !on) return;
  inSandboxNs(pool, sb, () => ensureSysctl(`net/ipv6/conf/${ifname}/disable_ipv6`, on ? '0' : '1'));
}

async function hasDefaultRoute(h: NetlinkHandle, family: 4 | 6): Promise<boolean> {
  return (await listRoutes(h, { family })).some((r) => r.dst === 'default');
}

/** Brings the interface into the sandbox under its final name; returns its name and index there. */
async function place(pool: NetlinkHandlePool, sb: SandboxRecord, info: JoinInfo, undo: Undo): Promise<{ ifname: string; index: number }> {
  const sbh = pool.get(sb.kind === 'host' ? undefined : sb.netnsPath);
  if (info.src.where === 'sandbox') return { ifname: info.src.name, index: info.src.index ?? (await linkIndex(sbh, info.src.name)) };
  const ifname = info.dstName ?? (await nextIfname(sbh, info.dstPrefix ?? 'eth'));
  const host = pool.get();
  if (sb.kind === 'host') {
    if (ifname !== info.src.name) await setLink(host, info.src.name, { name: ifname });
  } else {
    await moveLink(host, info.src.name, sb.netnsPath, ifname);
    undo.push('move', () => moveLink(sbh, ifname, daemonNsPath(pool), info.src.name));
  }
  return { ifname, index: await linkIndex(sbh, ifname) };
}

/** Puts info into the sandbox (see the file's head); returns the interface's name there. */
export function applyJoinInfo(pool: NetlinkHandlePool, sb: SandboxRecord, info: JoinInfo, opts: ApplyOptions): Promise<string> {
  return withRollback(async (undo) => {
    const { ifname, index } = await place(pool, sb, info, undo);
    const sbh = pool.get(sb.kind === 'host' ? undefined : sb.netnsPath);
    if (info.mac !== undefined || info.mtu !== undefined) await setLink(sbh, index, { ...(info.mac ? { mac: info.mac } : {}), ...(info.mtu ? { mtu: info.mtu } : {}) });
    setIPv6(pool, sb, ifname, info.ipv6Enabled, info.src.where === 'sandbox');
    // Before it comes up: its first solicitations go at this pace already.
    if (info.neighSolicit !== undefined) for (const family of info.ipv6Enabled ? [4, 6] as const : [4] as const) await setNeighSolicit(sbh, index, family, info.neighSolicit);
    if (info.ipv4) await addAddress(sbh, index, info.ipv4);
    if (info.ipv6) await addAddress(sbh, index, info.ipv6, { nodad: true });
    await setLinkUp(sbh, index);
    for (const r of info.routes) {
      const family = parseNetwork('routes', r.destination).family;
      await addRoute(sbh, { dst: r.destination, dev: index, family, ...(r.nextHop ? { gateway: r.nextHop } : {}) });
    }
    const noDefault = async (family: 4 | 6): Promise<boolean> => opts.fresh || !(await hasDefaultRoute(sbh, family));
    if (info.gateway && (await noDefault(4))) await addRoute(sbh, { dst: 'default', gateway: info.gateway, dev: index });
    if (info.gatewayV6 && (await noDefault(6))) await addRoute(sbh, { dst: 'default', gateway: info.gatewayV6, dev: index, family: 6 });
    return ifname;
  });
}
