// Setup step 3: kernel switches in the daemon's (host) namespace — IPv4/IPv6 forwarding, and
// bridge-nf-call-ip(6)tables so the firewall sees traffic between ports of one bridge (ICC off,
// hairpin). Written through /proc/sys, which is per network namespace. Never turned back off:
// other networks and the host may rely on them, as with Docker.
import { ensureSysctl } from '../../src/netns/index.js';

/** Equivalent to: `sysctl -w net.ipv4.ip_forward=1 [net.ipv6.conf.all.forwarding=1] net.bridge.bridge-nf-call-iptables=1`. */
export function enableForwarding(opts: { ipv6: boolean; bridgeNetfilter: boolean }): string[] {
  const changed: string[] = [];
  const set = (key: string, value: string): void => {
    if (ensureSysctl(key, value)) changed.push(`${key}=${value}`);
  };
  set('net/ipv4/ip_forward', '1');
  if (opts.ipv6) set('net/ipv6/conf/all/forwarding', '1');
  if (opts.bridgeNetfilter) {
    set('net/bridge/bridge-nf-call-iptables', '1');
    if (opts.ipv6) set('net/bridge/bridge-nf-call-ip6tables', '1');
  }
  return changed;
}
