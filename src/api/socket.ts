// Unix sockets of the daemon's HTTP APIs: a socket file left by a dead process is replaced, a live
// one refused; sockets are root-only (mode 0660) and nothing listens on TCP.
import fs from 'node:fs';
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { ConflictError } from '../errors.js';

export const SOCKET_MODE = 0o660;

/** Removes a socket file left by a dead process; refuses when something still answers on it. */
export async function claimSocket(socketPath: string): Promise<void> {
  if (!fs.existsSync(socketPath)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(socketPath, () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
  if (alive) throw new ConflictError(`another process is already listening on ${socketPath}`);
  fs.rmSync(socketPath, { force: true });
}

/** Claims socketPath, listens on it and makes it root-only. */
export async function listenUnix(app: FastifyInstance, socketPath: string): Promise<void> {
  await claimSocket(socketPath);
  await app.listen({ path: socketPath });
  fs.chmodSync(socketPath, SOCKET_MODE);
}
