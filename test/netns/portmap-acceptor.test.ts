// The native TCP acceptor under the userland proxy: a port range bound in one call inside a
// namespace (checked with ss), each accepted client handed over with the id of its port, batches
// all or nothing naming the failing port, and close() freeing the ports at once, idempotently.
import net from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { native, type TcpAcceptor } from '../../src/netns/native.js';
import { runInNetns } from '../../src/netns/index.js';
import { describeRoot } from '../helpers/root.js';
import { makeNs, type TestNs } from '../helpers/netns.js';

/** TCP ports listening in ns, sorted. */
async function listening(ns: TestNs): Promise<number[]> {
  const out = await ns.sh(['ss', '-Htln']);
  const locals = out.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[3] as string);
  return locals.map((local) => Number(local.slice(local.lastIndexOf(':') + 1))).sort((a, b) => a - b);
}

const accepted: { id: number; fd: number }[] = [];
const acceptor: TcpAcceptor = native.tcpAcceptor((id, fd) => {
  accepted.push({ id, fd });
  const socket = new net.Socket({ fd, readable: true, writable: true });
  socket.end(`id ${id}\n`);
});
const open: number[][] = [];
afterAll(() => open.forEach((ids) => acceptor.close(ids)));

describeRoot('native TCP acceptor', () => {
  it('binds a range in one call and hands each client over with the id of the port it came to', async () => {
    const ns = await makeNs('acc');
    await ns.sh(['ip', 'link', 'set', 'lo', 'up']);
    const ids = runInNetns(ns.path, () => acceptor.listen('127.0.0.1', 41000, 50, false, 16));
    open.push(ids);
    expect(ids).toHaveLength(50);
    expect(new Set(ids).size).toBe(50);
    expect(await listening(ns)).toEqual(Array.from({ length: 50 }, (_, i) => 41000 + i));
    for (const i of [0, 49]) {
      const reply = await ns.sh(['nc', '-N', '-w', '5', '127.0.0.1', String(41000 + i)], { input: '' });
      expect(reply).toBe(`id ${ids[i]}\n`);
    }
    expect(accepted.map((a) => a.id)).toEqual([ids[0], ids[49]]);
    acceptor.close(ids);
    expect(await listening(ns)).toEqual([]);
    expect(() => acceptor.close(ids)).not.toThrow();
  });

  it('refuses a batch when one port is taken, naming it, and leaves none of the batch bound', async () => {
    const ns = await makeNs('acc');
    const held = runInNetns(ns.path, () => acceptor.listen('::', 42005, 1, false, 16));
    open.push(held);
    let caught: (Error & { code?: string; port?: number; syscall?: string }) | undefined;
    try {
      runInNetns(ns.path, () => acceptor.listen('0.0.0.0', 42000, 10, false, 16));
    } catch (err) {
      caught = err as typeof caught;
    }
    expect(caught).toMatchObject({ code: 'EADDRINUSE', port: 42005, syscall: 'bind' });
    expect(await listening(ns)).toEqual([42005]);
    acceptor.close(held);
    // The port is free again at once: another batch takes the whole range.
    const ids = runInNetns(ns.path, () => acceptor.listen('0.0.0.0', 42000, 10, false, 16));
    open.push(ids);
    expect(await listening(ns)).toEqual(Array.from({ length: 10 }, (_, i) => 42000 + i));
  });

  it('refuses what is not an address and ports outside 1-65535 before binding anything', () => {
    expect(() => acceptor.listen('not-an-ip', 80, 1, false, 16)).toThrow(/not an IPv4 or IPv6 address/);
    expect(() => acceptor.listen('127.0.0.1', 65535, 2, false, 16)).toThrow(/1-65535/);
    expect(() => acceptor.listen('127.0.0.1', 0, 1, false, 16)).toThrow(/1-65535/);
  });
});
