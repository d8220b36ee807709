// Simulated hosts for cluster mode, for tests and benchmarks alike (no test-runner imports): an
// underlay namespace with a bridge in 198.19.255.0/24, N host namespaces joined to it by a veth
// named eth0 there, one real etcd (Debian etcd-server) in the underlay namespace, and a daemon
// per host on demand. etcd also listens on a unix socket in its temp dir, so the test process
// (in the real host's namespace) can drive etcd and in-process clusters without any route to
// the underlay. Faults: stop/kill/freeze/restart of etcd and of each daemon, compaction.
// Optionally etcd speaks TLS with client certificates (made with openssl in its temp dir).
// Limits: ports 2379/2380 are fixed, which is safe because the underlay namespace is new.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { StoreClient } from '../../src/cluster/client.js';
import { startCluster } from '../../src/cluster/index.js';
import { Keys } from '../../src/cluster/keys.js';
import type { Cluster, LocalSubnet, Peer } from '../../src/cluster/types.js';
import { TestDaemon } from './daemon.js';
import { check, run } from './exec.js';

export const ETCD = '/usr/bin/etcd';
export const UNDERLAY_IP = '198.19.255.254';
/** Global pools of tests: inside the benchmarking range, apart from the daemons' local pools (198.18.0.0/16). */
export const GLOBAL_POOL = 'base=198.19.0.0/17,size=24';
export const GLOBAL_POOLS = [{ base: '198.19.0.0/17', size: 24 }];

let made = 0;

/** A namespace name unique to this run and process, under the run prefix the host check tracks. */
function nsName(tag: string): string {
  made += 1;
  return `ct${process.env.CNMKIT_TEST_RUN ?? 'local'}-${process.pid % 100000}-cl${made}-${tag}`;
}

export class SimNs {
  readonly path: string;
  constructor(readonly name: string) {
    this.path = `/run/netns/${name}`;
  }
  sh(argv: string[]): Promise<string> {
    return check(['ip', 'netns', 'exec', this.name, ...argv]);
  }
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** TLS files made with openssl: a CA, etcd's server certificate (for ip) and a client certificate. */
export interface TlsFiles {
  cacert: string;
  cert: string;
  key: string;
}

export async function makeTls(dir: string, ip: string): Promise<{ server: TlsFiles; client: TlsFiles }> {
  const f = (name: string) => path.join(dir, name);
  const req = ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1'];
  await check([...req, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-subj', '/CN=cnmkit-test-ca']);
  const leaf = ['-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-addext', 'basicConstraints=critical,CA:FALSE'];
  // clientAuth too: with client certificates required, etcd's JSON gateway (which cnmkit speaks)
  // reaches etcd's own gRPC service presenting the server certificate as its client certificate.
  await check([...req, '-keyout', f('server.key'), '-out', f('server.pem'), '-subj', '/CN=etcd', ...leaf, '-addext', `subjectAltName=IP:${ip}`, '-addext', 'extendedKeyUsage=serverAuth,clientAuth']);
  await check([...req, '-keyout', f('client.key'), '-out', f('client.pem'), '-subj', '/CN=cnmkit', ...leaf, '-addext', 'extendedKeyUsage=clientAuth']);
  return {
    server: { cacert: f('ca.pem'), cert: f('server.pem'), key: f('server.key') },
    client: { cacert: f('ca.pem'), cert: f('client.pem'), key: f('client.key') },
  };
}

/** One etcd member in a namespace; data and sockets in its own temp dir (tmpfs when there is one). */
export class EtcdServer {
  readonly dir: string;
  proc: ChildProcess | undefined;
  /** The address daemons use (--cluster-store). */
  readonly storeUrl: string;
  /** The same etcd over a unix socket, for the test process: --cluster-store form. */
  readonly socketUrl: string;
  /** With TLS: etcd asks clients on its address for a certificate signed by this CA (the unix socket stays plain). */
  tls: { server: TlsFiles; client: TlsFiles } | undefined;

  constructor(readonly ns: SimNs, readonly ip: string) {
    const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
    this.dir = fs.mkdtempSync(path.join(base, 'cnmkit-etcd-'));
    this.storeUrl = `etcd://${ip}:2379`;
    this.socketUrl = `unix://${path.join(this.dir, 'etcd.sock:2379')}`;
  }

  /** Starts etcd on its data dir (kept across restarts) and waits until it answers. */
  async useTls(): Promise<TlsFiles> {
    this.tls = await makeTls(this.dir, this.ip);
    return this.tls.client;
  }

  async start(): Promise<void> {
    const log = fs.openSync(path.join(this.dir, 'etcd.log'), 'a');
    const scheme = this.tls ? 'https' : 'http';
    const tls = this.tls ? ['--cert-file', this.tls.server.cert, '--key-file', this.tls.server.key, '--trusted-ca-file', this.tls.server.cacert, '--client-cert-auth'] : [];
    const args = ['--net=' + this.ns.path, '--', ETCD, '--name', 'n', '--data-dir', path.join(this.dir, 'data'), ...tls,
      '--listen-client-urls', `${scheme}://${this.ip}:2379,unix://etcd.sock:2379`, '--advertise-client-urls', `${scheme}://${this.ip}:2379`,
      '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
      '--initial-cluster', 'n=http://127.0.0.1:2380', '--logger', 'zap', '--log-outputs', 'stderr'];
    this.proc = spawn('nsenter', args, { cwd: this.dir, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    const client = this.client();
    try {
      await waitFor('etcd answering', async () => {
        if (this.proc?.exitCode !== null) throw new Error(`etcd exited: ${this.log().slice(-2000)}`);
        return (await client.range('/', { prefix: false })).revision;
      }, 15_000);
    } finally {
      client.close();
    }
  }

  log(): string {
    return fs.readFileSync(path.join(this.dir, 'etcd.log'), 'utf8');
  }

  /** Ends etcd with a signal and waits for it (SIGTERM: a clean stop; SIGKILL: a crash). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    if (signal !== 'SIGKILL') proc.kill('SIGCONT');
    const exited = new Promise((res) => proc.once('exit', res));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  /** SIGSTOP: etcd keeps its sockets but answers nothing (a hung or cut-off store). */
  freeze(): void {
    this.proc?.kill('SIGSTOP');
  }

  thaw(): void {
    this.proc?.kill('SIGCONT');
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** A client over the unix socket (close it after use). */
  client(): StoreClient {
    return new StoreClient({ endpoints: [this.socketUrl] }, { failFastMs: 3000 });
  }

  /** Compacts the history up to the current revision; returns it. */
  async compact(): Promise<number> {
    const client = this.client();
    try {
      const { revision } = await client.range('/', { prefix: false });
      await client.compact(revision);
      return revision;
    } finally {
      client.close();
    }
  }

  async destroy(): Promise<void> {
    await this.stop('SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** etcd alone in a namespace of its own (loopback only): the test process reaches it over its unix socket. */
export async function standaloneEtcd(): Promise<{ etcd: EtcdServer; destroy(): Promise<void> }> {
  const ns = new SimNs(nsName('etcd'));
  await check(['ip', 'netns', 'add', ns.name]);
  const etcd = new EtcdServer(ns, '127.0.0.1');
  const destroy = async (): Promise<void> => {
    await etcd.destroy();
    await run(['ip', 'netns', 'del', ns.name]);
  };
  try {
    await ns.sh(['ip', 'link', 'set', 'lo', 'up']);
    await etcd.start();
  } catch (err) {
    await destroy();
    throw err;
  }
  return { etcd, destroy };
}

export interface SimHost {
  index: number;
  ns: SimNs;
  /** The host's underlay address (its VTEP), on eth0. */
  ip: string;
  daemon: TestDaemon<SimNs>;
}

/** `cnmkit ARGS…` against host h's daemon: its stdout, or an error naming the host and the CLI's stderr. */
export async function simCli(h: SimHost, args: string[]): Promise<string> {
  const r = await h.daemon.cmd(args);
  if (r.code !== 0) throw new Error(`cnmkit ${args.join(' ')} on host ${h.index} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Whether one ping from the sandbox (a named namespace) to the address is answered within 1 s. */
export async function pings(sb: string, to: string): Promise<boolean> {
  return (await run(['ip', 'netns', 'exec', sb, 'ping', '-c', '1', '-W', '1', to], { timeoutMs: 5000 })).stdout.includes('1 received');
}

/** The VXLAN id of global network net, as `network inspect` on host h shows it. */
export async function simVni(h: SimHost, net: string): Promise<number> {
  return (JSON.parse(await simCli(h, ['network', 'inspect', net, '--format', 'json'])) as { global: { vni: number } }[])[0]!.global.vni;
}

/** Keys of the cluster's store (default prefix) that name the network, read straight from etcd. */
export async function simKeysNaming(sim: SimCluster, name: string): Promise<string[]> {
  const client = sim.etcd.client();
  try {
    return (await client.range('/cnmkit/')).kvs.map((kv) => kv.key).filter((k) => k.split('/').includes(name));
  } finally {
    client.close();
  }
}

/** A peer record as etcd holds it: the record, its key (the host and endpoint ids are the key's last parts) and its lease. */
export interface StoredPeer extends Peer {
  key: string;
  lease: string;
}

/**
 * The peer records of network net read straight from etcd, in key order: all of them, or those of
 * one host or one endpoint. From a client the caller holds, or (a cluster) over a client opened
 * for the read. prefix: the cluster's key prefix (default /cnmkit).
 */
export async function storedPeers(from: StoreClient | Pick<SimCluster, 'etcd'>, net: string, o: { host?: string; endpointId?: string; prefix?: string } = {}): Promise<StoredPeer[]> {
  const client = from instanceof StoreClient ? from : from.etcd.client();
  const keys = new Keys(o.prefix ?? '/cnmkit');
  try {
    const { kvs } = await client.range(o.host === undefined ? keys.peers(net) : keys.hostPeers(net, o.host));
    return kvs.filter((kv) => o.endpointId === undefined || kv.key.endsWith(`/${o.endpointId}`))
      .map((kv) => ({ ...(JSON.parse(kv.value.toString()) as Peer), key: kv.key, lease: kv.lease }));
  } finally {
    if (client !== from) client.close();
  }
}

/**
 * Until an in-process host's watch of the cluster's networks has listed them: a network made after
 * this "appears" to it (read ahead); one made before is in its first list, and is not.
 */
export async function networksWatched(h: Cluster): Promise<void> {
  const watch = (h as unknown as { networkCache: { watch: { stats(): { state: string } } } }).networkCache.watch;
  await waitFor('the host watches the networks', async () => (watch.stats().state === 'watching' ? true : undefined), 3000);
}

/** A new sandbox on host h connected to network net (extra: connect's own flags), recorded in made for the test to remove. */
export async function simJoined<Ep>(h: SimHost, net: string, made: { h: SimHost; sb: string }[], extra: string[] = []): Promise<{ sb: string; ep: Ep }> {
  const sb = await h.daemon.sandbox();
  made.push({ h, sb });
  return { sb, ep: JSON.parse(await simCli(h, ['connect', net, sb, ...extra, '--format', 'json'])) as Ep };
}

export interface InProcessOptions {
  localSubnets?: LocalSubnet[];
  leaseTtl?: number;
  /** Reuse a state dir (a restarted host). */
  stateDir?: string;
  /** Key prefix (tests keep apart by prefix); default /cnmkit. */
  prefix?: string;
  globalPools?: { base: string; size: number }[];
  /** How long a stock of spare addresses goes without a take before it is trimmed (default the daemon's, 1 s). */
  spareIdleMs?: number;
}

export interface SimClusterOptions {
  hosts: number;
  /** Lease TTL of the daemons (seconds; default 3). */
  leaseTtl?: number;
  /** More daemon flags. */
  daemonArgs?: string[];
  /** The daemons' --firewall-backend (default none: most tests need no rules in the hosts). */
  firewallBackend?: 'none' | 'nftables' | 'iptables';
  /** Start etcd before returning (default true). */
  startEtcd?: boolean;
  /** etcd on TLS with client certificates; the daemons get --cluster-store-opt cacert, cert and key. */
  tls?: boolean;
  /** Host i's --advertise-addr (default eth0, which holds its underlay address). */
  advertise?: (i: number) => string;
}

/** The underlay, etcd and N hosts; daemons are created but started by the caller (host.daemon.start()). */
export class SimCluster {
  readonly clusters: Cluster[] = [];
  private readonly dirs: string[] = [];

  private constructor(readonly underlay: SimNs, readonly etcd: EtcdServer, readonly hosts: SimHost[], readonly leaseTtl: number) {}

  static async create(o: SimClusterOptions): Promise<SimCluster> {
    const underlay = new SimNs(nsName('u'));
    const nss: SimNs[] = [];
    let etcd: EtcdServer | undefined;
    try {
      await check(['ip', 'netns', 'add', underlay.name]);
      await underlay.sh(['ip', 'link', 'set', 'lo', 'up']);
      await underlay.sh(['ip', 'link', 'add', 'br0', 'type', 'bridge']);
      await underlay.sh(['ip', 'addr', 'add', `${UNDERLAY_IP}/24`, 'dev', 'br0']);
      await underlay.sh(['ip', 'link', 'set', 'br0', 'up']);
      etcd = new EtcdServer(underlay, UNDERLAY_IP);
      const tls = o.tls ? await etcd.useTls() : undefined;
      const tlsArgs = tls ? ['--cluster-store-opt', `cacert=${tls.cacert}`, '--cluster-store-opt', `cert=${tls.cert}`, '--cluster-store-opt', `key=${tls.key}`] : [];
      const hosts: SimHost[] = [];
      const ttl = o.leaseTtl ?? 3;
      for (let i = 1; i <= o.hosts; i++) {
        const ns = new SimNs(nsName(`h${i}`));
        nss.push(ns);
        const ip = `198.19.255.${i}`;
        await check(['ip', 'netns', 'add', ns.name]);
        await ns.sh(['ip', 'link', 'set', 'lo', 'up']);
        await check(['ip', 'link', 'add', `u${i}`, 'netns', underlay.name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
        await underlay.sh(['ip', 'link', 'set', `u${i}`, 'master', 'br0', 'up']);
        await ns.sh(['ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
        await ns.sh(['ip', 'link', 'set', 'eth0', 'up']);
        const daemon = new TestDaemon(ns, [
          '--cluster-store', `etcd://${UNDERLAY_IP}:2379`, '--advertise-addr', o.advertise?.(i) ?? 'eth0', '--cluster-lease-ttl', String(ttl),
          '--default-global-address-pool', GLOBAL_POOL, '--firewall-backend', o.firewallBackend ?? 'none', ...tlsArgs, ...(o.daemonArgs ?? []),
        ]);
        hosts.push({ index: i, ns, ip, daemon });
      }
      const sim = new SimCluster(underlay, etcd, hosts, ttl);
      if (o.startEtcd !== false) await etcd.start();
      return sim;
    } catch (err) {
      await etcd?.destroy();
      for (const ns of [...nss, underlay]) await run(['ip', 'netns', 'del', ns.name]);
      throw err;
    }
  }

  /**
   * A Cluster in this process standing for one more host (own state dir and host id), reaching
   * etcd over its unix socket; its VTEP is a made-up underlay address.
   */
  async inProcessHost(n: number, o: InProcessOptions = {}): Promise<Cluster & { stateDir: string }> {
    const stateDir = o.stateDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-clhost-'));
    if (!o.stateDir) this.dirs.push(stateDir);
    const config = {
      endpoints: [this.etcd.socketUrl], prefix: o.prefix ?? '/cnmkit', vtep: `198.19.255.${100 + n}`, leaseTtl: o.leaseTtl ?? this.leaseTtl,
      globalPools: o.globalPools ?? GLOBAL_POOLS,
    };
    const cluster = await startCluster({
      config, stateDir, logger: pino({ level: 'silent' }), localSubnets: () => o.localSubnets ?? [], ...(o.spareIdleMs !== undefined ? { spareIdleMs: o.spareIdleMs } : {}),
    });
    this.clusters.push(cluster);
    return Object.assign(cluster, { stateDir });
  }

  /** Stops every daemon and in-process cluster, etcd, and removes the namespaces and dirs. */
  async destroy(): Promise<void> {
    const errors: unknown[] = [];
    const step = async (fn: () => Promise<unknown>) => fn().catch((err: unknown) => errors.push(err));
    for (const c of this.clusters) await step(() => c.close());
    await Promise.all(this.hosts.map((h) => step(() => h.daemon.cleanup())));
    await step(() => this.etcd.destroy());
    for (const ns of [...this.hosts.map((h) => h.ns), this.underlay]) await step(() => check(['ip', 'netns', 'del', ns.name]));
    for (const d of this.dirs) fs.rmSync(d, { recursive: true, force: true });
    if (errors.length > 0) throw new AggregateError(errors, `cluster harness teardown: ${errors.length} step(s) failed`);
  }
}

export { waitFor };
