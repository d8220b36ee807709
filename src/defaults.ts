// The daemon's default paths and settings, and the networks it always has, in a module with no
// dependencies so that the CLI can show them in --help (and a lab file be checked against them)
// without loading the daemon.
export const DAEMON_DEFAULTS = {
  socket: '/run/cnmkit/cnmkit.sock',
  stateDir: '/var/lib/cnmkit',
  runDir: '/run/cnmkit',
  pluginDir: '/run/docker/plugins',
  netnsDir: '/run/netns',
  logLevel: 'info',
  bridgeName: 'cnmkit0',
  firewallBackend: 'auto',
  userlandProxy: true,
} as const;

/** The networks every daemon has, like Docker's `host` and `none` (name → driver); never pruned or removed. */
export const PREDEFINED_NETWORKS: ReadonlyMap<string, string> = new Map([['none', 'null'], ['host', 'host'], ['bridge', 'bridge']]);
