// `cnmkit daemon`: runs the daemon in the foreground; flags move every path so that several
// daemons (simulated hosts) can run on one machine. The daemon's modules load only for this
// command, so client commands start fast.
import type { DaemonOptions } from '../../daemon.js';
import type { ProxyLimitOptions } from '../../portmap/limits.js';
import { DAEMON_DEFAULTS } from '../../defaults.js';
import { type Command, expectPositionals, UsageError } from '../command.js';

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
    '      --proxy-max-connections N           TCP connections and UDP flows the proxy holds at once (default: from the fd limit)',
    '      --proxy-max-connections-per-port N  the same on one host port (default: half the total)',
    '      --proxy-idle-timeout DURATION       close a proxied TCP connection idle this long, e.g. 1h (default 0: never, as docker-proxy)',
    '      --proxy-udp-idle-timeout DURATION   close a UDP flow idle this long (default 30s)',
    '      --proxy-max-ports N                 host ports the proxy holds at once (default: from the fd limit)',
    '      --log-level LEVEL  fatal, error, warn, info, debug or trace (default info)',
  ],
  options: {
    socket: { type: 'string' }, 'state-dir': { type: 'string' }, 'run-dir': { type: 'string' }, 'plugin-dir': { type: 'string' },
    'netns-dir': { type: 'string' }, 'default-address-pool': { type: 'string', multiple: true }, 'log-level': { type: 'string' },
    'bridge-name': { type: 'string' }, bip: { type: 'string' }, 'firewall-backend': { type: 'string' }, 'userland-proxy': { type: 'string' },
    'proxy-max-connections': { type: 'string' }, 'proxy-max-connections-per-port': { type: 'string' }, 'proxy-idle-timeout': { type: 'string' },
    'proxy-udp-idle-timeout': { type: 'string' }, 'proxy-max-ports': { type: 'string' },
  },
  async run(v, pos) {
    expectPositionals(this, pos, 0);
    const level = (v['log-level'] as string | undefined) ?? DAEMON_DEFAULTS.logLevel;
    if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(level)) throw new UsageError(`--log-level: unknown level ${JSON.stringify(level)}`);
    const backend = (v['firewall-backend'] as string | undefined) ?? DAEMON_DEFAULTS.firewallBackend;
    if (!['auto', 'iptables', 'nftables', 'none'].includes(backend)) throw new UsageError(`--firewall-backend: expected auto, iptables, nftables or none, got ${JSON.stringify(backend)}`);
    const proxy = (v['userland-proxy'] as string | undefined) ?? 'true';
    if (proxy !== 'true' && proxy !== 'false') throw new UsageError(`--userland-proxy: expected true or false, got ${JSON.stringify(proxy)}`);
    const proxyLimits = await checkProxyFlags(v, proxy === 'true');
    if (process.getuid?.() !== 0) {
      console.error('cnmkit daemon: must run as root (it creates namespaces and changes the kernel network)');
      return 1;
    }
    const { parseDefaultAddressPool } = await import('../../ipam/defaults.js');
    const { startDaemon } = await import('../../daemon.js');
    const pools = (v['default-address-pool'] as string[] | undefined)?.map((s) => parseDefaultAddressPool(s));
    const d = await startDaemon({
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
      ...(pools ? { defaultAddressPools: pools } : {}),
    });
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => () => {
        d.logger.info({ signal: sig }, 'stopping');
        resolve();
      };
      process.once('SIGINT', stop('SIGINT'));
      process.once('SIGTERM', stop('SIGTERM'));
    });
    await d.close();
    return 0;
  },
};

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
