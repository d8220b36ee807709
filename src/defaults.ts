// The daemon's default paths and settings, in a module with no dependencies so that the CLI can
// show them in --help without loading the daemon.
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
