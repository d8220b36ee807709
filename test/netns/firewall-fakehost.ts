// A fake host for the firewall tests, built with iproute2 in throwaway namespaces: "host" with
// bridges, containers on veths, and a "client" across an underlay. Also servers and clients
// (socat) whose processes are killed by pid after each test. Addresses are all in 198.18.0.0/15.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach } from 'vitest';
import { createFirewall, type FirewallBackend, type FirewallLogger } from '../../src/firewall/index.js';
import { check } from '../helpers/exec.js';
import { ifname, makeNs, type TestNs } from '../helpers/netns.js';

export const UNDERLAY = { host: '198.19.0.1', client: '198.19.0.2', host6: 'fd19::1', client6: 'fd19::2' };

export interface Container {
  ns: TestNs;
  ip: string;
  ip6?: string;
  /** The host end of its veth, a port of the bridge. */
  hostIf: string;
}

export interface FakeHost {
  host: TestNs;
  client: TestNs;
  /** Adds a bridge with gatewayCidr (and optional IPv6 gateway) to host. */
  bridge(name: string, gatewayCidr: string, gateway6?: string): Promise<void>;
  /** Adds a container namespace on bridge `br` with address cidr, default route via gw. */
  container(tag: string, br: string, cidr: string, gw: string, v6?: { cidr: string; gw: string }): Promise<Container>;
}

async function sysctl(ns: TestNs, key: string, value: string): Promise<void> {
  await ns.sh(['sysctl', '-q', '-w', `${key}=${value}`]);
}

/** host ⟷ client over an underlay veth; forwarding on in host (inside the namespace only). */
export async function fakeHost(): Promise<FakeHost> {
  const [host, client] = await Promise.all([makeNs('host'), makeNs('client')]);
  await check(['ip', '-n', host.name, 'link', 'add', 'u0', 'type', 'veth', 'peer', 'name', 'u1', 'netns', client.name]);
  await check(['ip', '-n', host.name, 'addr', 'add', `${UNDERLAY.host}/24`, 'dev', 'u0']);
  await check(['ip', '-n', host.name, 'addr', 'add', `${UNDERLAY.host6}/64`, 'dev', 'u0', 'nodad']);
  await check(['ip', '-n', host.name, 'link', 'set', 'u0', 'up']);
  await check(['ip', '-n', client.name, 'addr', 'add', `${UNDERLAY.client}/24`, 'dev', 'u1']);
  await check(['ip', '-n', client.name, 'addr', 'add', `${UNDERLAY.client6}/64`, 'dev', 'u1', 'nodad']);
  await check(['ip', '-n', client.name, 'link', 'set', 'u1', 'up']);
  await sysctl(host, 'net.ipv4.ip_forward', '1');
  await sysctl(host, 'net.ipv6.conf.all.forwarding', '1');
  await sysctl(host, 'net.bridge.bridge-nf-call-iptables', '1');
  await sysctl(host, 'net.bridge.bridge-nf-call-ip6tables', '1');
  return {
    host,
    client,
    async bridge(name, gatewayCidr, gateway6) {
      await check(['ip', '-n', host.name, 'link', 'add', name, 'type', 'bridge']);
      await check(['ip', '-n', host.name, 'addr', 'add', gatewayCidr, 'dev', name]);
      if (gateway6) await check(['ip', '-n', host.name, 'addr', 'add', gateway6, 'dev', name, 'nodad']);
      await check(['ip', '-n', host.name, 'link', 'set', name, 'up']);
    },
    async container(tag, br, cidr, gw, v6) {
      const ns = await makeNs(tag);
      const hostIf = ifname('vc');
      await check(['ip', '-n', host.name, 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
      await check(['ip', '-n', host.name, 'link', 'set', hostIf, 'master', br, 'up']);
      await check(['ip', '-n', ns.name, 'addr', 'add', cidr, 'dev', 'eth0']);
      if (v6) await check(['ip', '-n', ns.name, 'addr', 'add', v6.cidr, 'dev', 'eth0', 'nodad']);
      await check(['ip', '-n', ns.name, 'link', 'set', 'eth0', 'up']);
      await check(['ip', '-n', ns.name, 'route', 'add', 'default', 'via', gw]);
      if (v6) await check(['ip', '-n', ns.name, '-6', 'route', 'add', 'default', 'via', v6.gw]);
      const ip = cidr.split('/')[0] as string;
      return { ns, ip, hostIf, ...(v6 ? { ip6: v6.cidr.split('/')[0] as string } : {}) };
    },
  };
}

const servers = new Set<ChildProcess>();

afterEach(async () => {
  const all = [...servers];
  servers.clear();
  await Promise.all(
    all.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
});

/** Waits until something in ns listens on port (tcp or udp). */
async function waitListening(ns: TestNs, proto: 'tcp' | 'udp', port: number): Promise<void> {
  const flag = proto === 'tcp' ? '-Hltn' : '-Hlun';
  for (let i = 0; i < 100; i += 1) {
    const r = await ns.exec(['ss', flag, `sport = :${port}`]);
    if (r.stdout.trim() !== '') return;
    await new Promise((res) => setTimeout(res, 30));
  }
  throw new Error(`nothing listens on ${proto}/${port} in ${ns.name}`);
}

/**
 * A server in ns that answers every connection (or datagram) with the peer address it sees,
 * so tests can tell whether a source address was rewritten. Killed by pid after the test.
 */
export async function peerEchoServer(ns: TestNs, proto: 'tcp' | 'udp', port: number, family: 4 | 6 = 4): Promise<void> {
  // A fixed program for socat's own shell; no test input reaches it.
  await serve(ns, proto, port, family, 'SYSTEM:echo $SOCAT_PEERADDR');
}

/** A TCP server on every address of ns that answers with a fixed word (a stand-in userland proxy). */
export async function wordServer(ns: TestNs, port: number, word: 'proxy'): Promise<void> {
  await serve(ns, 'tcp', port, 4, `SYSTEM:echo ${word}`);
}

async function serve(ns: TestNs, proto: 'tcp' | 'udp', port: number, family: 4 | 6, program: string): Promise<void> {
  const listen = proto === 'tcp' ? `TCP${family}-LISTEN:${port},fork,reuseaddr` : `UDP${family}-RECVFROM:${port},fork`;
  const child = spawn('ip', ['netns', 'exec', ns.name, 'socat', listen, program], { stdio: 'ignore' });
  servers.add(child);
  await waitListening(ns, proto, port);
}

/** Connects from ns to addr:port and returns what the server said ('' when nothing came). */
export async function ask(ns: TestNs, proto: 'tcp' | 'udp', addr: string, port: number): Promise<string> {
  const host = addr.includes(':') ? `[${addr}]` : addr;
  const target = proto === 'tcp' ? `TCP:${host}:${port},connect-timeout=2` : `UDP:${host}:${port}`;
  // -t: after our side ends, wait that long for the reply (the server forks a shell per request).
  // UDP has no handshake: a datagram sent before the server bound is lost, so ask a few times.
  for (let attempt = 0; ; attempt++) {
    const r = await ns.exec(['socat', '-t', '3', '-T', '3', '-', target], { input: proto === 'udp' ? 'hello\n' : '', timeoutMs: 8000 });
    if (r.stdout.trim() !== '' || proto === 'tcp' || attempt === 2) return r.stdout.trim();
  }
}

/** One ping; true when a reply came back. */
export async function pings(ns: TestNs, addr: string): Promise<boolean> {
  const r = await ns.exec(['busybox', 'ping', '-c', '1', '-W', '1', addr], { timeoutMs: 5000 });
  return r.code === 0;
}

/** The firewall state of ns as text: iptables-save and ip6tables-save, or nft's JSON ruleset (rule handles left out on request). */
export async function ruleset(ns: TestNs, backend: TestedBackend, opts: { handles?: boolean } = {}): Promise<string> {
  if (backend === 'nftables') {
    const items = (JSON.parse(await ns.sh(['nft', '-j', 'list', 'ruleset'])) as { nftables: Record<string, { handle?: number }>[] }).nftables.slice(1);
    if (opts.handles === false) for (const item of items) if (item.rule) delete item.rule.handle;
    return JSON.stringify(items, null, 1);
  }
  const clean = (text: string): string =>
    text
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/\[\d+:\d+\]/g, '[*]'))
      .join('\n');
  const [v4, v6] = backend === 'iptables-legacy' ? ['iptables-legacy-save', 'ip6tables-legacy-save'] : ['iptables-save', 'ip6tables-save'];
  return `${clean(await ns.sh([v4]))}\n${clean(await ns.sh([v6]))}`;
}

export type KernelBackend = 'iptables' | 'nftables';
export const KERNEL_BACKENDS: KernelBackend[] = ['iptables', 'nftables'];
/** The backends and, for traffic, also the other iptables variant (legacy xtables). */
export type TestedBackend = KernelBackend | 'iptables-legacy';

export interface LogEntry {
  level: string;
  obj: object;
  msg?: string;
}

/** A logger that keeps what it is told, for tests that check what was logged. */
export function memoryLogger(): FirewallLogger & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      entries.push({ level, obj, ...(msg === undefined ? {} : { msg }) });
    };
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A backend acting in ns, initialised. */
export async function firewallIn(ns: TestNs, backend: TestedBackend): Promise<{ fw: FirewallBackend; log: ReturnType<typeof memoryLogger> }> {
  const log = memoryLogger();
  const fw =
    backend === 'iptables-legacy'
      ? await createFirewall({ backend: 'iptables', iptablesVariant: 'iptables-legacy', netnsPath: ns.path, logger: log })
      : await createFirewall({ backend, netnsPath: ns.path, logger: log });
  await fw.init();
  return { fw, log };
}

/** An address as socat reports it (IPv6 in brackets, fully expanded) → the usual short form. */
export function peerAddr(text: string): string {
  const bare = text.replace(/^\[|\]$/g, '');
  if (!bare.includes(':')) return bare;
  return bare
    .split(':')
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')
    .replace(/(^|:)0(:0)+(:|$)/, '::');
}
