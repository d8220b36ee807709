// Serving cnmkit to the Docker engine as legacy plugins: one unix socket per plugin name in the
// engine's plugin directory (IpamDriver on cnmkit-ipam.sock, NetworkDriver on cnmkit-bridge.sock),
// mode 0660. A socket file left by a dead process is replaced; a live one is refused.
// Limit: the engine activates lazily and caches capabilities, so serve before the engine starts.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ConflictError } from '../../errors.js';
import type { Ipam } from '../../ipam/index.js';
import { buildPluginApp } from './app.js';
import { ipamHandlers } from './ipam.js';
import { networkHandlers, type DockerNetworkBackend } from './network.js';

export { buildPluginApp, type Handlers, type PluginAppOptions } from './app.js';
export { pluginErrorReply } from './errors.js';
export { addressRequestOf, gatewayOwner, ipamHandlers, DYNAMIC_OWNER, EXPLICIT_OWNER, GATEWAY_REQUEST_TYPE } from './ipam.js';
export { interfaceReply, networkHandlers, LOCAL_CAPABILITIES, type DockerNetworkBackend } from './network.js';

export const IPAM_PLUGIN = 'cnmkit-ipam';
export const BRIDGE_PLUGIN = 'cnmkit-bridge';
const SOCKET_MODE = 0o660;

export interface DockerPluginApiOptions {
  logger: Logger;
  ipam?: Ipam;
  network?: DockerNetworkBackend;
  checkReplies?: boolean;
}

/** One app serving the IpamDriver and/or the NetworkDriver, whichever is given. */
export function buildDockerPluginApi(opts: DockerPluginApiOptions): Promise<FastifyInstance> {
  return buildPluginApp({
    logger: opts.logger,
    handlers: {
      ...(opts.ipam ? { IpamDriver: ipamHandlers(opts.ipam) } : {}),
      ...(opts.network ? { NetworkDriver: networkHandlers(opts.network) } : {}),
    },
    ...(opts.checkReplies === undefined ? {} : { checkReplies: opts.checkReplies }),
  });
}

export interface ServePluginsOptions {
  /** Where the engine looks for plugin sockets: /run/docker/plugins. */
  pluginDir: string;
  ipam: Ipam;
  /** The NetworkDriver backend; without it only the IPAM socket is served. */
  network?: DockerNetworkBackend;
  logger: Logger;
  /** Plugin names (the sockets' base names); default cnmkit-ipam and cnmkit-bridge. */
  names?: { ipam?: string; network?: string };
  checkReplies?: boolean;
}

export interface PluginServers {
  /** Plugin name → socket path. */
  readonly sockets: Record<string, string>;
  close(): Promise<void>;
}

/** Removes a socket file left by a dead process; refuses when something still answers on it. */
async function claimSocket(socketPath: string): Promise<void> {
  if (!fs.existsSync(socketPath)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(socketPath, () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
  if (alive) throw new ConflictError(`another process is already serving the plugin socket ${socketPath}`);
  fs.rmSync(socketPath, { force: true });
}

async function listen(app: FastifyInstance, socketPath: string): Promise<void> {
  await claimSocket(socketPath);
  await app.listen({ path: socketPath });
  fs.chmodSync(socketPath, SOCKET_MODE);
}

export async function servePlugins(opts: ServePluginsOptions): Promise<PluginServers> {
  fs.mkdirSync(opts.pluginDir, { recursive: true, mode: 0o755 });
  const plan: [string, DockerPluginApiOptions][] = [[opts.names?.ipam ?? IPAM_PLUGIN, { logger: opts.logger, ipam: opts.ipam }]];
  if (opts.network) plan.push([opts.names?.network ?? BRIDGE_PLUGIN, { logger: opts.logger, network: opts.network }]);
  const apps: FastifyInstance[] = [];
  const sockets: Record<string, string> = {};
  const close = async (): Promise<void> => {
    await Promise.all(apps.map((app) => app.close()));
    for (const socketPath of Object.values(sockets)) fs.rmSync(socketPath, { force: true });
  };
  try {
    for (const [name, api] of plan) {
      const app = await buildDockerPluginApi({ ...api, ...(opts.checkReplies === undefined ? {} : { checkReplies: opts.checkReplies }) });
      apps.push(app);
      const socketPath = path.join(opts.pluginDir, `${name}.sock`);
      await listen(app, socketPath);
      sockets[name] = socketPath;
    }
  } catch (err) {
    await close();
    throw err;
  }
  opts.logger.info({ sockets }, 'Docker plugins served');
  return { sockets, close };
}
