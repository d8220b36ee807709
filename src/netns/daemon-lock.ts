// One daemon per network namespace: the daemon binds an abstract unix socket for its whole life.
// Abstract names belong to the network namespace, and the kernel frees one when its process dies
// (SIGKILL included), so the name is a per-namespace mutex that never goes stale. A second daemon
// finds the name bound, asks the first who it is, and is refused before it touches anything.
// Limits: any process of the namespace may bind the name first (there are no permissions on it).
import net from 'node:net';
import { ConflictError } from '../errors.js';

/** The abstract socket's name (the leading NUL makes it abstract). */
export const DAEMON_LOCK_NAME = '\0cnmkit-daemon';
const ASK_TIMEOUT_MS = 2000;

/** What the holder tells a daemon that finds the name taken. */
export interface DaemonIdentity {
  pid: number;
  socket: string;
  stateDir: string;
}

export interface NamespaceLock {
  /** Frees the name. Idempotent. */
  release(): Promise<void>;
}

function listen(server: net.Server, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ path: name }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Asks the daemon holding the name who it is; undefined when it does not answer in time. */
function askHolder(name: string): Promise<Partial<DaemonIdentity> | undefined> {
  return new Promise((resolve) => {
    let text = '';
    const c = net.connect({ path: name });
    const done = (who: Partial<DaemonIdentity> | undefined): void => {
      c.destroy();
      resolve(who);
    };
    c.setTimeout(ASK_TIMEOUT_MS, () => done(undefined));
    c.on('data', (d) => (text += d.toString()));
    c.on('error', () => done(undefined));
    c.on('end', () => {
      try {
        done(JSON.parse(text) as Partial<DaemonIdentity>);
      } catch {
        done(undefined);
      }
    });
  });
}

/**
 * Takes this network namespace for the daemon `me`; refuses with a ConflictError naming the
 * daemon that has it (pid and socket) when another one runs here.
 */
export async function lockNetworkNamespace(me: DaemonIdentity, name = DAEMON_LOCK_NAME): Promise<NamespaceLock> {
  const server = net.createServer((c) => c.end(JSON.stringify(me)));
  try {
    await listen(server, name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    const who = await askHolder(name);
    const holder = who?.pid !== undefined ? `pid ${who.pid}, socket ${who.socket ?? '?'}, state ${who.stateDir ?? '?'}` : 'it did not say who it is';
    throw new ConflictError(
      `another cnmkit daemon already runs in this network namespace (${holder}); run one daemon per namespace: stop that one, or start this one in another namespace (nsenter --net=…)`,
    );
  }
  let released = false;
  return {
    release: () => {
      if (released) return Promise.resolve();
      released = true;
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
