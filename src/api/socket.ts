// Unix sockets of the daemon's HTTP APIs: a socket file left by a dead process is replaced, a live
// one refused; a socket appears at its path already root-only (mode 0660), and nothing listens on
// TCP. Every server gets the same limits: clients that send slowly are cut, requests being
// handled never are (a long publish may take seconds), and connections are capped. An answer
// given before its request's body was read is not lost by closing at once (lingering close).
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import { ConflictError } from '../errors.js';

export const SOCKET_MODE = 0o660;

export interface SocketLimits {
  /** Time a client has to send a request's headers, from its first byte (or from connecting). */
  headersTimeoutMs: number;
  /** Time a client has to send a whole request, headers and body. Handling it is not counted. */
  requestTimeoutMs: number;
  /** How long a kept-alive connection may stay idle between requests. */
  keepAliveTimeoutMs: number;
  /** Connections open at once; more are closed as soon as they are accepted. */
  maxConnections: number;
}

/** The management API: the CLI sends a request at once and closes. */
export const MANAGEMENT_LIMITS: Readonly<SocketLimits> = { headersTimeoutMs: 5_000, requestTimeoutMs: 10_000, keepAliveTimeoutMs: 5_000, maxConnections: 128 };

/** The Docker plugin sockets: the engine keeps connections alive and sets no request timeout. */
export const PLUGIN_LIMITS: Readonly<SocketLimits> = { ...MANAGEMENT_LIMITS, keepAliveTimeoutMs: 72_000 };

/** Declared bodies larger than this are not read after an early answer: the connection closes at once. */
const LINGER_MAX_BYTES = 2 * 1024 * 1024;

/**
 * Lingering close. Node closes a connection as soon as the last answer is written; when that answer
 * came before the request's body was read (a 404, 414 or 415 from the router, a 413), the client
 * may still be writing it, and a close with unread bytes resets the connection: the client's next
 * write fails and it may never read the answer (seen by the reliability soak on large bodies).
 * Here the writing side ends (the client sees the answer, then the end), node reads and discards
 * the rest of the body, and the connection closes once the request has been read whole, the
 * client ends, or the request timeout passes.
 */
function lingerBeforeClosing(socket: net.Socket, requestOf: WeakMap<net.Socket, http.IncomingMessage>, timeoutMs: number): void {
  const destroySoon = socket.destroySoon.bind(socket);
  socket.destroySoon = () => {
    const req = requestOf.get(socket);
    if (!req || req.complete || Number(req.headers['content-length'] ?? 0) > LINGER_MAX_BYTES) return destroySoon();
    const close = (): void => {
      clearTimeout(timer);
      socket.destroy();
    };
    const timer = setTimeout(close, timeoutMs);
    req.once('end', close);
    socket.once('end', close);
    socket.once('close', () => clearTimeout(timer));
    socket.end();
  };
}

/**
 * Fastify options that build a server with these limits. Node checks the header and request
 * deadlines every connectionsCheckingInterval (30 s by default): a quarter of the header timeout
 * here. The socket inactivity timeout stays off: it would also cut a request being handled.
 */
export function limitedServer(limits: SocketLimits): Pick<FastifyServerOptions, 'serverFactory'> {
  return {
    serverFactory: (handler) => {
      const requestOf = new WeakMap<net.Socket, http.IncomingMessage>();
      const server = http.createServer({
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: limits.requestTimeoutMs,
        connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
      }, (req, res) => {
        requestOf.set(req.socket, req);
        handler(req, res);
      });
      server.on('connection', (socket: net.Socket) => lingerBeforeClosing(socket, requestOf, limits.requestTimeoutMs));
      server.keepAliveTimeout = limits.keepAliveTimeoutMs;
      server.maxConnections = limits.maxConnections;
      server.timeout = 0;
      return server;
    },
  };
}

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

/**
 * Claims socketPath and listens on it. The socket is bound inside a new 0700 directory next to
 * its path, made root-only there (no one else can reach into that directory), then renamed into
 * place: rename(2) is atomic, so the path never shows a socket with any other mode, and no
 * process-wide umask is changed. Closing the app removes the socket file.
 */
export async function listenUnix(app: FastifyInstance, socketPath: string): Promise<void> {
  await claimSocket(socketPath);
  let placed = false;
  app.addHook('onClose', async () => {
    if (placed) fs.rmSync(socketPath, { force: true });
  });
  const dir = fs.mkdtempSync(path.join(path.dirname(socketPath), '.cnmkit-sock-'));
  try {
    const bound = path.join(dir, 'sock');
    await app.listen({ path: bound, listenTextResolver: () => `Server listening at ${socketPath}` });
    fs.chmodSync(bound, SOCKET_MODE);
    fs.renameSync(bound, socketPath);
    placed = true;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
