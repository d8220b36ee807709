// The native TCP acceptor under the userland proxy: a port range bound in one call inside a
// namespace (checked with ss), each accepted client handed over with the id of its port, batches
// all or nothing naming the failing port, close() freeing the ports at once, idempotently, and
// the per-port and total limits: a client over one is reset before JS sees it, JS hears once.
import net from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { native, type LimitReason, type TcpAcceptor } from '../../src/netns/native.js';
import { runInNetns } from '../../src/netns/index.js';
import { describeRoot } from '../helpers/root.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { Flood } from './fixtures/portmap-harness.js';

/** TCP ports listening in ns, sorted. */
async function listening(ns: TestNs): Promise<number[]> {
  const out = await ns.sh(['ss', '-Htln']);
  const locals = out.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[3] as string);
  return locals.map((local) => Number(local.slice(local.lastIndexOf(':') + 1))).sort((a, b) => a - b);
}

const accepted: { id: number; fd: number }[] = [];
const notices: { id: number; limit: LimitReason }[] = [];
/** Clients kept open (not answered) by the limit test; the others get their listener's id and end. */
const kept: net.Socket[] = [];
let holdClients = false;
const acceptor: TcpAcceptor = native.tcpAcceptor((id, fd, _err, limit) => {
  if (limit) return notices.push({ id, limit }) > 0;
  accepted.push({ id, fd });
  const socket = new net.Socket({ fd, readable: true, writable: true });
  if (holdClients) kept.push(socket);
  else socket.end(`id ${id}\n`);
  return true;
});
const budget = native.proxyBudget(1000);
const open: number[][] = [];
afterAll(() => open.forEach((ids) => acceptor.close(ids)));

describeRoot('native TCP acceptor', () => {
  it('binds a range in one call and hands each client over with the id of the port it came to', async () => {
    const ns = await makeNs('acc');
    await ns.sh(['ip', 'link', 'set', 'lo', 'up']);
    const ids = runInNetns(ns.path, () => acceptor.listen('127.0.0.1', 41000, 50, false, 16, budget, 1000));
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
    const held = runInNetns(ns.path, () => acceptor.listen('::', 42005, 1, false, 16, budget, 1000));
    open.push(held);
    let caught: (Error & { code?: string; port?: number; syscall?: string }) | undefined;
    try {
      runInNetns(ns.path, () => acceptor.listen('0.0.0.0', 42000, 10, false, 16, budget, 1000));
    } catch (err) {
      caught = err as typeof caught;
    }
    expect(caught).toMatchObject({ code: 'EADDRINUSE', port: 42005, syscall: 'bind' });
    expect(await listening(ns)).toEqual([42005]);
    acceptor.close(held);
    // The port is free again at once: another batch takes the whole range.
    const ids = runInNetns(ns.path, () => acceptor.listen('0.0.0.0', 42000, 10, false, 16, budget, 1000));
    open.push(ids);
    expect(await listening(ns)).toEqual(Array.from({ length: 10 }, (_, i) => 42000 + i));
  });

  it('refuses what is not an address and ports outside 1-65535 before binding anything', () => {
    expect(() => acceptor.listen('not-an-ip', 80, 1, false, 16, budget, 1000)).toThrow(/not an IPv4 or IPv6 address/);
    expect(() => acceptor.listen('127.0.0.1', 65535, 2, false, 16, budget, 1000)).toThrow(/1-65535/);
    expect(() => acceptor.listen('127.0.0.1', 0, 1, false, 16, budget, 1000)).toThrow(/1-65535/);
  });

  it('resets a client over the per-port or the total limit before JS sees it, tells JS once a second, and admits again once released', async () => {
    const ns = await makeNs('acc');
    const small = native.proxyBudget(3);
    holdClients = true;
    const floods: Flood[] = [];
    try {
      const ids = runInNetns(ns.path, () => acceptor.listen('127.0.0.1', 43000, 2, false, 16, small, 2));
      open.push(ids);
      const flood = async (port: number, count: number) => {
        const f = await Flood.start(ns.name, '127.0.0.1', port, count, 500, 1);
        floods.push(f.flood);
        return f.counts;
      };
      // Two of five are admitted (JS holds them, silent); three are reset by the acceptor.
      expect(await flood(43000, 5)).toMatchObject({ ok: 0, silent: 2, refused: 3 });
      expect(accepted.filter((a) => a.id === ids[0])).toHaveLength(2);
      expect(notices).toEqual([{ id: ids[0], limit: 'max-connections-per-port' }]);
      // Port 43001: one more fits the total of 3; the next is over max-connections.
      expect(await flood(43001, 2)).toMatchObject({ silent: 1, refused: 1 });
      expect(notices.at(-1)).toEqual({ id: ids[1], limit: 'max-connections' });
      expect(small.stats()).toMatchObject({ live: 3, limit: 3, tcp: 3, udp: 0, hits: { 'max-connections': 1, 'max-connections-per-port': 3, 'idle-timeout': 0 } });

      // Releasing the two of port 43000 makes room for two more there.
      for (const socket of kept.splice(0, 2)) socket.destroy();
      for (let i = 0; i < 2; i++) {
        acceptor.release(ids[0] as number);
        small.releaseTcp();
      }
      expect(await flood(43000, 2)).toMatchObject({ silent: 2, refused: 0 });
      expect(small.stats()).toMatchObject({ live: 3, tcp: 3 });
    } finally {
      holdClients = false;
      for (const socket of kept.splice(0)) socket.destroy();
      await Promise.all(floods.map((f) => f.stop()));
    }
  });
});
