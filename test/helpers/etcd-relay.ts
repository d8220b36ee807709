// A unix-socket relay between a daemon and etcd (or a CLI and its daemon), for tests that must
// land a fault in a precise window: answers pass `delayMs` late, or not at all once `held`; requests pass at once, or are
// dropped while `requestsHeld` (the connection is useless afterwards: for a daemon about to be killed),
// or dropped with the rest of their connection when `dropWhen` says so of a chunk (e.g. every
// transaction, while reads and watch streams pass; the client's deadline then closes the connection).
import net from 'node:net';

export class HoldingRelay {
  delayMs = 0;
  held = false;
  requestsHeld = false;
  dropWhen: ((chunk: Buffer) => boolean) | undefined;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(readonly socket: string, target: string) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(target);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          this.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      let dropping = false;
      client.on('data', (d) => {
        dropping ||= this.dropWhen?.(d) === true;
        if (!this.requestsHeld && !dropping) upstream.write(d);
      });
      upstream.on('data', (d) => {
        if (this.held) return;
        if (this.delayMs === 0) client.write(d);
        else setTimeout(() => !this.held && client.write(d), this.delayMs);
      });
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socket, resolve));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
