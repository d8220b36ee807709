// Setup step 3: kernel switches in the daemon's (host) namespace — IPv4/IPv6 forwarding, and
// bridge-nf-call-ip(6)tables so the firewall sees traffic between ports of one bridge (ICC off,
// hairpin). Written through the context's sysctl access (/proc/sys is per network namespace).
// Never turned back off: other networks and the host may rely on them, as with Docker.
import type { HostSysctl } from '../../src/contract/driver.js';

/** Equivalent to: `sysctl -w net.ipv4.ip_forward=1 [net.ipv6.conf.all.forwarding=1] net.bridge.bridge-nf-call-iptables=1`. */
export function enableForwarding(sysctl: HostSysctl, opts: { ipv6: boolean; bridgeNetfilter: boolean }): string[] {
  const changed: string[] = [];
  const set = (key: string, value: string): void => {
    if (sysctl.ensure(key, value)) changed.push(`${key}=${value}`);
  };
  set('net/ipv4/ip_forward', '1');
  if (opts.ipv6) set('net/ipv6/conf/all/forwarding', '1');
  if (opts.bridgeNetfilter) {
    set('net/bridge/bridge-nf-call-iptables', '1');
    if (opts.ipv6) set('net/bridge/bridge-nf-call-ip6tables', '1');
  }
  return changed;
}
