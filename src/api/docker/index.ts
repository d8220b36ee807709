// Serving cnmkit to the Docker engine as legacy plugins: one unix socket per plugin name in the
// engine's plugin directory (IpamDriver on cnmkit-ipam.sock, a NetworkDriver on PLUGIN.sock for each
// driver with a Docker plugin name, e.g. cnmkit-bridge.sock), mode 0660. In cluster mode cnmkit-ipam
// also serves the overlays' global pools from the cluster (./ipam-global.ts). A socket file left by a dead process is replaced; a live one is refused.
// Limit: the engine activates lazily and caches capabilities, so serve before the engine starts.
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Ipam } from '../../ipam/index.js';
import type { Cluster } from '../../cluster/types.js';
import { globalIpamHandlers } from './ipam-global.js';
import type { DaemonMetrics } from '../metrics.js';
import { buildPluginApp } from './app.js';
import { ipamHandlers } from './ipam.js';
import { networkHandlers, type DockerNetworkBackend } from './network.js';
import { listenUnix } from '../socket.js';

export { buildPluginApp, type Handlers, type PluginAppOptions } from './app.js';
export { pluginErrorReply } from './errors.js';
export { addressRequestOf, gatewayOwner, ipamHandlers, DYNAMIC_OWNER, EXPLICIT_OWNER, GATEWAY_REQUEST_TYPE } from './ipam.js';
export { interfaceReply, networkHandlers, LOCAL_CAPABILITIES, type DockerNetworkBackend } from './network.js';
export { driverBackend, joinReply } from './driver-backend.js';
export { globalIpamHandlers, overlayNameOf, OVERLAY_NAME_OPTION } from './ipam-global.js';

export const IPAM_PLUGIN = 'cnmkit-ipam';

export interface DockerPluginApiOptions {
  logger: Logger;
  ipam?: Ipam;
  network?: DockerNetworkBackend;
  /** Cluster mode: the IPAM serves global pools for overlay networks too. */
  cluster?: Cluster;
  checkReplies?: boolean;
  metrics?: DaemonMetrics;
}

/** One app serving the IpamDriver and/or the NetworkDriver, whichever is given. */
export function buildDockerPluginApi(opts: DockerPluginApiOptions): Promise<FastifyInstance> {
  return buildPluginApp({
    logger: opts.logger,
    handlers: {
      ...(opts.ipam ? { IpamDriver: opts.cluster ? globalIpamHandlers(ipamHandlers(opts.ipam), opts.cluster) : ipamHandlers(opts.ipam) } : {}),
      ...(opts.network ? { NetworkDriver: networkHandlers(opts.network) } : {}),
    },
    ...(opts.checkReplies === undefined ? {} : { checkReplies: opts.checkReplies }),
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
  });
}

export interface ServePluginsOptions {
  /** Where the engine looks for plugin sockets: /run/docker/plugins. */
  pluginDir: string;
  ipam: Ipam;
  /** NetworkDriver backends by plugin name (a socket each); without any only the IPAM socket is served. */
  networks?: Record<string, DockerNetworkBackend>;
  logger: Logger;
  cluster?: Cluster;
  /** The IPAM plugin's name (its socket's base name); default cnmkit-ipam. */
  ipamName?: string;
  checkReplies?: boolean;
  metrics?: DaemonMetrics;
}

export interface PluginServers {
  /** Plugin name → socket path. */
  readonly sockets: Record<string, string>;
  close(): Promise<void>;
}


export async function servePlugins(opts: ServePluginsOptions): Promise<PluginServers> {
  fs.mkdirSync(opts.pluginDir, { recursive: true, mode: 0o755 });
  const plan: [string, DockerPluginApiOptions][] = [[opts.ipamName ?? IPAM_PLUGIN, { logger: opts.logger, ipam: opts.ipam, ...(opts.cluster ? { cluster: opts.cluster } : {}) }]];
  for (const [name, network] of Object.entries(opts.networks ?? {})) plan.push([name, { logger: opts.logger, network }]);
  const apps: FastifyInstance[] = [];
  const sockets: Record<string, string> = {};
  const close = async (): Promise<void> => {
    await Promise.all(apps.map((app) => app.close()));
    for (const socketPath of Object.values(sockets)) fs.rmSync(socketPath, { force: true });
  };
  try {
    for (const [name, api] of plan) {
      const app = await buildDockerPluginApi({
        ...api, ...(opts.checkReplies === undefined ? {} : { checkReplies: opts.checkReplies }), ...(opts.metrics ? { metrics: opts.metrics } : {}),
      });
      apps.push(app);
      const socketPath = path.join(opts.pluginDir, `${name}.sock`);
      await listenUnix(app, socketPath);
      sockets[name] = socketPath;
    }
  } catch (err) {
    await close();
    throw err;
  }
  opts.logger.info({ sockets }, 'Docker plugins served');
  return { sockets, close };
}
