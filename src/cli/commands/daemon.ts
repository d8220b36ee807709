// `cnmkit daemon`: runs the daemon in the foreground; flags move every path so that several
// daemons (simulated hosts) can run on one machine. The daemon's modules load only for this
// command, so client commands start fast.
import fs from 'node:fs';
import type { DaemonOptions } from '../../daemon/options.js';
import type { ProxyLimitOptions } from '../../portmap/limits.js';
import { DAEMON_DEFAULTS } from '../../defaults.js';
import { type Command, expectPositionals, UsageError, type Values } from '../command.js';
import type { ClusterConfig } from '../../cluster/options.js';

/** The cluster flags, validated before anything is touched: a bad one is a usage error naming it. */
async function clusterConfig(v: Values): Promise<ClusterConfig | undefined> {
  const { parseClusterFlags } = await import('../../cluster/options.js');
  const { savedVtep } = await import('../../cluster/hosts.js');
  const { InvalidArgumentError } = await import('../../errors.js');
  try {
    const saved = v['cluster-store'] === undefined ? undefined : savedVtep((v['state-dir'] as string | undefined) ?? DAEMON_DEFAULTS.stateDir);
    return parseClusterFlags({
      ...(v['cluster-store'] !== undefined ? { store: v['cluster-store'] as string } : {}),
      ...(v['cluster-store-opt'] !== undefined ? { storeOpts: v['cluster-store-opt'] as string[] } : {}),
      ...(v['advertise-addr'] !== undefined ? { advertise: v['advertise-addr'] as string } : {}),
      ...(v['cluster-lease-ttl'] !== undefined ? { leaseTtl: v['cluster-lease-ttl'] as string } : {}),
      ...(v['default-global-address-pool'] !== undefined ? { globalPools: v['default-global-address-pool'] as string[] } : {}),
    }, undefined, saved);
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw new UsageError(err.message);
    throw err;
  }
}

/** The daemon's options from its flags, all validated (usage errors name the flag). */
async function daemonOptions(v: Values): Promise<DaemonOptions> {
  const level = (v['log-level'] as string | undefined) ?? DAEMON_DEFAULTS.logLevel;
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(level)) throw new UsageError(`--log-level: unknown level ${JSON.stringify(level)}`);
  const backend = (v['firewall-backend'] as string | undefined) ?? DAEMON_DEFAULTS.firewallBackend;
  if (!['auto', 'iptables', 'nftables', 'none'].includes(backend)) throw new UsageError(`--firewall-backend: expected auto, iptables, nftables or none, got ${JSON.stringify(backend)}`);
  const proxy = (v['userland-proxy'] as string | undefined) ?? 'true';
  if (proxy !== 'true' && proxy !== 'false') throw new UsageError(`--userland-proxy: expected true or false, got ${JSON.stringify(proxy)}`);
  const plugins = (v['docker-plugins'] as string | undefined) ?? 'true';
  if (plugins !== 'true' && plugins !== 'false') throw new UsageError(`--docker-plugins: expected true or false, got ${JSON.stringify(plugins)}`);
  const metricsAddr = v['metrics-addr'] as string | undefined;
  const proxyLimits = await checkProxyFlags(v, proxy === 'true');
  const cluster = await clusterConfig(v);
  const { parseDefaultAddressPool } = await import('../../ipam/defaults.js');
  const { validateDaemonOptions } = await import('../../daemon/options.js');
  const { InvalidArgumentError } = await import('../../errors.js');
  try {
    const pools = (v['default-address-pool'] as string[] | undefined)?.map((s) => parseDefaultAddressPool(s));
    const opts: DaemonOptions = {
      socket: (v.socket as string | undefined) ?? DAEMON_DEFAULTS.socket,
      stateDir: (v['state-dir'] as string | undefined) ?? DAEMON_DEFAULTS.stateDir,
      runDir: (v['run-dir'] as string | undefined) ?? DAEMON_DEFAULTS.runDir,
      pluginDir: (v['plugin-dir'] as string | undefined) ?? DAEMON_DEFAULTS.pluginDir,
      netnsDir: (v['netns-dir'] as string | undefined) ?? DAEMON_DEFAULTS.netnsDir,
      logLevel: level,
      bridgeName: (v['bridge-name'] as string | undefined) ?? DAEMON_DEFAULTS.bridgeName,
      ...(v.bip !== undefined ? { bip: v.bip as string } : {}),
      firewallBackend: backend as DaemonOptions['firewallBackend'],
      userlandProxy: proxy === 'true',
      proxyLimits,
      dockerPlugins: plugins === 'true',
      ...(pools ? { defaultAddressPools: pools } : {}),
      ...(metricsAddr !== undefined ? { metricsAddr } : {}),
      ...(cluster ? { cluster } : {}),
    };
    validateDaemonOptions(opts);
    return opts;
  } catch (err) {
    if (!(err instanceof InvalidArgumentError)) throw err;
    throw new UsageError(err.field?.startsWith('--') ? err.message : `--default-address-pool: ${err.message}`);
  }
}

export const daemon: Command = {
  name: 'daemon',
  summary: 'Run the cnmkit daemon in the foreground (as root).',
  usage: 'cnmkit daemon [OPTIONS]',
  help: [
    `      --socket PATH      management API socket (default ${DAEMON_DEFAULTS.socket})`,
    `      --state-dir DIR    state database folder (default ${DAEMON_DEFAULTS.stateDir})`,
    `      --run-dir DIR      runtime folder (default ${DAEMON_DEFAULTS.runDir})`,
    `      --plugin-dir DIR   Docker plugin sockets folder (default ${DAEMON_DEFAULTS.pluginDir})`,
    `      --netns-dir DIR    where named sandboxes are mounted (default ${DAEMON_DEFAULTS.netnsDir})`,
    '      --default-address-pool base=CIDR,size=N   replace the default local pools (repeatable)',
    `      --bridge-name DEV  device of the default bridge network (default ${DAEMON_DEFAULTS.bridgeName}; docker0 works too)`,
    '      --bip CIDR         gateway address and prefix of the default bridge, e.g. 172.17.0.1/16',
    '      --firewall-backend auto|iptables|nftables|none   (default auto)',
    '      --userland-proxy true|false   serve published ports to loopback and hairpin clients in the daemon (default true)',
    '      --metrics-addr IP:PORT   also serve GET /metrics on this TCP address for a scraper, e.g. 127.0.0.1:9323 (default off)',
    '      --docker-plugins true|false   serve the Docker plugin sockets in --plugin-dir (default true)',
    '      --proxy-max-connections N           TCP connections and UDP flows the proxy holds at once (default: from the fd limit)',
    '      --proxy-max-connections-per-port N  the same on one host port (default: half the total)',
    '      --proxy-idle-timeout DURATION       close a proxied TCP connection idle this long, e.g. 1h (default 0: never, as docker-proxy)',
    '      --proxy-udp-idle-timeout DURATION   close a UDP flow idle this long (default 30s)',
    '      --proxy-max-ports N                 host ports the proxy holds at once (default: from the fd limit)',
    '      --log-level LEVEL  fatal, error, warn, info, debug or trace (default info)',
    '      --ready-fd N       write "ready" and a newline to file descriptor N (inherited, 3 or more) once the API answers, then close it',
    '      --cluster-store etcd://HOST:PORT[,HOST:PORT…]   cluster mode: global networks, IPAM and peers in etcd v3',
    '      --cluster-store-opt K=V   cacert=FILE, cert=FILE, key=FILE (TLS), prefix=/PATH (default /cnmkit); repeatable',
    '      --advertise-addr IP|IFACE   this host\'s VTEP address (an interface gives its first IPv4); required in cluster mode',
    '      --cluster-lease-ttl SECONDS   lease of this host\'s keys in etcd (default 15)',
    '      --default-global-address-pool base=CIDR,size=N   replace the global pools (default base=10.0.0.0/8,size=24; repeatable)',
  ],
  options: {
    socket: { type: 'string' }, 'state-dir': { type: 'string' }, 'run-dir': { type: 'string' }, 'plugin-dir': { type: 'string' },
    'netns-dir': { type: 'string' }, 'default-address-pool': { type: 'string', multiple: true }, 'log-level': { type: 'string' },
    'bridge-name': { type: 'string' }, bip: { type: 'string' }, 'firewall-backend': { type: 'string' }, 'userland-proxy': { type: 'string' },
    'metrics-addr': { type: 'string' }, 'docker-plugins': { type: 'string' }, 'ready-fd': { type: 'string' },
    'proxy-max-connections': { type: 'string' }, 'proxy-max-connections-per-port': { type: 'string' }, 'proxy-idle-timeout': { type: 'string' },
    'proxy-udp-idle-timeout': { type: 'string' }, 'proxy-max-ports': { type: 'string' },
    'cluster-store': { type: 'string' }, 'cluster-store-opt': { type: 'string', multiple: true }, 'advertise-addr': { type: 'string' },
    'cluster-lease-ttl': { type: 'string' }, 'default-global-address-pool': { type: 'string', multiple: true },
  },
  async run(v, pos) {
    expectPositionals(this, pos, 0);
    // Every flag is checked before anything changes on disk or in the kernel.
    const opts = await daemonOptions(v);
    const readyFd = readyFdOf(v['ready-fd'] as string | undefined);
    if (process.getuid?.() !== 0) {
      console.error('cnmkit daemon: must run as root (it creates namespaces and changes the kernel network)');
      return 1;
    }
    const { startDaemon } = await import('../../daemon.js');
    const d = await startDaemon(opts);
    // The stop handlers first: whoever reads "ready" may stop the daemon at once, and without them that signal kills it with no clean stop.
    const stopped = new Promise<void>((resolve) => {
      const stop = (sig: string) => () => {
        d.logger.info({ signal: sig }, 'stopping');
        resolve();
      };
      process.once('SIGINT', stop('SIGINT'));
      process.once('SIGTERM', stop('SIGTERM'));
    });
    if (readyFd !== undefined) signalReady(readyFd);
    await stopped;
    await d.close();
    return 0;
  },
};

/** --ready-fd: an open descriptor above stdio, checked before anything starts. */
function readyFdOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const fd = /^[0-9]{1,9}$/.test(text) ? Number(text) : NaN;
  if (!(fd >= 3)) throw new UsageError(`--ready-fd: expected a file descriptor number of 3 or more, got ${JSON.stringify(text)}`);
  try {
    fs.fstatSync(fd);
  } catch {
    throw new UsageError(`--ready-fd: file descriptor ${fd} is not open`);
  }
  return fd;
}

/** Tells whoever started the daemon that its API answers; a reader that went away is no error. */
function signalReady(fd: number): void {
  try {
    fs.writeSync(fd, 'ready\n');
  } catch {
    // The starter stopped waiting (EPIPE): the daemon runs on regardless.
  }
  fs.closeSync(fd);
}

/** The --proxy-* flags as limit options, checked against the fd limit when the proxy runs. */
async function checkProxyFlags(v: Record<string, unknown>, proxyOn: boolean): Promise<ProxyLimitOptions> {
  const { PROXY_FLAGS, proxyFlagOptions, resolveProxyLimits } = await import('../../portmap/limits.js');
  try {
    const options = proxyFlagOptions(v);
    if (proxyOn) resolveProxyLimits(options);
    return options;
  } catch (err) {
    const { field, message } = err as { field?: string; message: string };
    const flag = field === undefined ? undefined : PROXY_FLAGS[field];
    throw new UsageError(flag && field ? `${flag}${message.slice(field.length)}` : message);
  }
}
