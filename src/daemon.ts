// The daemon: opens the store, reconciles it with the kernel, registers the drivers, creates the
// predefined networks, and serves the management API on a root-only unix socket. Stops cleanly
// on SIGINT/SIGTERM; a SIGKILL at any instant is repaired by reconcile at the next start.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { Controller } from './cnm/controller.js';
import { DriverRegistry, type DriverContext } from './cnm/driver.js';
import { createSandboxKernel } from './cnm/sandbox-kernel.js';
import { buildManagementApi } from './api/management.js';
import { openStore, type Store } from './store/index.js';
import { Ipam, type DefaultPool } from './ipam/index.js';
import { createNullDriver } from '../drivers/null/index.js';
import { createHostDriver } from '../drivers/host/index.js';
import { DEFAULT_NETNS_DIR } from './netns/index.js';
import { loopbackUp } from './netns/loopback.js';
import { VERSION } from './version.js';

export interface DaemonOptions {
  socket: string;
  stateDir: string;
  runDir: string;
  pluginDir: string;
  netnsDir: string;
  logLevel: string;
  defaultAddressPools?: DefaultPool[];
  /** A logger to use instead of a new one (tests). */
  logger?: Logger;
}

export const DAEMON_DEFAULTS: DaemonOptions = {
  socket: '/run/cnmkit/cnmkit.sock',
  stateDir: '/var/lib/cnmkit',
  runDir: '/run/cnmkit',
  pluginDir: '/run/docker/plugins',
  netnsDir: DEFAULT_NETNS_DIR,
  logLevel: 'info',
};

/** The networks every daemon has, like Docker's `host` and `none`; never pruned or removed. */
export const PREDEFINED = new Map([['none', 'null'], ['host', 'host']]);

export interface Daemon {
  controller: Controller;
  store: Store;
  api: FastifyInstance;
  logger: Logger;
  close(): Promise<void>;
}

/** Removes a socket file left by a dead daemon; refuses when a live one is listening there. */
async function claimSocket(socketPath: string): Promise<void> {
  if (!fs.existsSync(socketPath)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(socketPath, () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
  if (alive) throw new Error(`another daemon is already listening on ${socketPath}`);
  fs.unlinkSync(socketPath);
}

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const logger = opts.logger ?? pino({ level: opts.logLevel, base: { pid: process.pid } });
  fs.mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.dirname(opts.socket), { recursive: true, mode: 0o750 });
  await claimSocket(opts.socket);
  const store = openStore(opts.stateDir);
  try {
    const ipam = new Ipam(store, opts.defaultAddressPools ? { defaultPools: opts.defaultAddressPools } : {});
    const ctx: DriverContext = { logger, hostNetns: '' };
    const drivers = new DriverRegistry();
    drivers.register(createNullDriver(ctx));
    drivers.register(createHostDriver(ctx));
    const kernel = createSandboxKernel({ netnsDir: opts.netnsDir, loopbackUp });
    const controller = new Controller({ store, ipam, drivers, kernel, logger, predefined: new Set(PREDEFINED.keys()) });
    for (const line of await controller.reconcile()) logger.warn({ reconcile: line }, 'reconciled');
    for (const [name, driver] of PREDEFINED) {
      if (!store.networks.getByName(name)) await controller.createNetwork({ name, driver });
    }
    const api = await buildManagementApi({ controller, logger });
    await api.listen({ path: opts.socket });
    fs.chmodSync(opts.socket, 0o660);
    logger.info({ version: VERSION, socket: opts.socket, stateDir: opts.stateDir, drivers: drivers.names() }, 'cnmkit daemon ready');
    return {
      controller, store, api, logger,
      async close() {
        await api.close();
        store.close();
      },
    };
  } catch (err) {
    store.close();
    throw err;
  }
}
