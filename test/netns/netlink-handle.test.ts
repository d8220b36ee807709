// Handles: one socket per namespace, reused; no process spawned per operation; dumps that run
// beside other requests; a pool keyed by namespace path; deletes in the background; and closing
// releases the namespace.
import childProcess, { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { afterEach, expect, it } from 'vitest';
import {
  addAddress, addBridge, addVeth, deleteAddress, deleteLink, listAddresses, listLinks, NetlinkHandle, NetlinkHandlePool, setLink,
} from '../../src/netlink/index.js';
import { runInNetns } from '../../src/netns/index.js';
import { describeRoot } from '../helpers/root.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { eventually, handleOn } from './netlink-helpers.js';

/** Ports of the rtnetlink sockets of this process in ns, as the kernel lists them. */
function rtnlPortsOfMine(ns: TestNs): number[] {
  const text = runInNetns(ns.path, () => fs.readFileSync('/proc/thread-self/net/netlink', 'utf8'));
  return text
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((c) => c[1] === '0' && Number(c[2]) !== 0)
    .map((c) => Number(c[2]));
}

/** Counts process spawns of any kind while installed (async via ChildProcess, and the sync ones). */
function countSpawns(): { count: () => number; restore: () => void } {
  let n = 0;
  // Every asynchronous spawn (spawn, exec, execFile, fork) goes through ChildProcess#spawn.
  const proto = ChildProcess.prototype as unknown as { spawn: (...args: unknown[]) => unknown };
  const saved = { spawn: proto.spawn, spawnSync: childProcess.spawnSync, execSync: childProcess.execSync, execFileSync: childProcess.execFileSync };
  proto.spawn = function (this: unknown, ...args: unknown[]) {
    n += 1;
    return saved.spawn.apply(this, args);
  };
  for (const name of ['spawnSync', 'execSync', 'execFileSync'] as const)
    (childProcess as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      n += 1;
      return (saved[name] as (...a: unknown[]) => unknown)(...args);
    };
  syncBuiltinESMExports();
  return {
    count: () => n,
    restore: () => {
      proto.spawn = saved.spawn;
      Object.assign(childProcess, { spawnSync: saved.spawnSync, execSync: saved.execSync, execFileSync: saved.execFileSync });
      syncBuiltinESMExports();
    },
  };
}

const pools: NetlinkHandlePool[] = [];
afterEach(() => {
  for (const p of pools.splice(0)) p.closeAll();
});

describeRoot('netlink handles', () => {
  it('reuses its sockets per namespace (requests; filtered dumps once one ran) and spawns no process per operation', async () => {
    const ns = await makeNs('reuse');
    const h = handleOn(ns);
    expect(rtnlPortsOfMine(ns)).toEqual([h.port]);
    const spawns = countSpawns();
    let withFiltered: number[] = [];
    try {
      await ns.linkNames();
      const before = spawns.count();
      expect(before, 'the counter sees a spawn').toBe(1);
      await addVeth(h, { name: 'r0', up: true, peer: { name: 'r1' } });
      for (let i = 0; i < 30; i++) {
        await addAddress(h, 'r0', `10.230.${i}.1/24`);
        await setLink(h, 'r0', { mtu: 1400 + i });
      }
      expect((await listAddresses(h, { dev: 'r0', family: 4 })).length).toBe(30);
      withFiltered = rtnlPortsOfMine(ns);
      expect(withFiltered).toHaveLength(2);
      expect(withFiltered).toContain(h.port);
      for (let i = 0; i < 30; i++) await deleteAddress(h, 'r0', `10.230.${i}.1/24`);
      for (let i = 0; i < 5; i++) expect(await listAddresses(h, { dev: 'r0', family: 4 })).toEqual([]);
      expect(rtnlPortsOfMine(ns)).toEqual(withFiltered);
      expect(spawns.count()).toBe(before);
    } finally {
      spawns.restore();
    }
    expect(rtnlPortsOfMine(ns)).toEqual(withFiltered);
    const [r0] = await ns.ipJson<{ mtu: number }[]>(['link', 'show', 'r0']);
    expect(r0?.mtu).toBe(1429);
  });

  it('runs dumps amid a stream of other requests on the same handle', async () => {
    const ns = await makeNs('mix');
    const h = handleOn(ns);
    await addBridge(h, { name: 'br0', up: true });
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      work.push(addAddress(h, 'br0', `10.231.${i}.1/24`));
      if (i % 4 === 0) work.push(listLinks(h), listAddresses(h));
    }
    await Promise.all(work);
    const [br] = await ns.ipJson<{ addr_info: unknown[] }[]>(['-4', 'addr', 'show', 'br0']);
    expect(br?.addr_info).toHaveLength(40);
  });

  it('a request made before close completes; later ones fail at once and the socket is gone', async () => {
    const ns = await makeNs('cls');
    const h = NetlinkHandle.open(ns.path);
    const before = listLinks(h);
    h.close();
    expect((await before).map((l) => l.name)).toEqual(['lo']);
    await expect(addBridge(h, { name: 'br0' })).rejects.toMatchObject({ code: 'ERR_NETLINK_CLOSED' });
    expect(() => h.close()).not.toThrow();
    expect(await ns.linkNames()).toEqual(['lo']);
    expect(rtnlPortsOfMine(ns)).toEqual([]);
  });

  it('a pool hands out one handle per namespace path and release closes it', async () => {
    const [a, b] = await Promise.all([makeNs('pla'), makeNs('plb')]);
    const pool = new NetlinkHandlePool();
    pools.push(pool);
    const ha = pool.get(a.path);
    expect(pool.get(a.path)).toBe(ha);
    const hb = pool.get(b.path);
    expect(hb).not.toBe(ha);
    expect(pool.size).toBe(2);
    await addBridge(ha, { name: 'onlyA' });
    expect(await b.linkNames()).toEqual(['lo']);
    expect(pool.release(a.path)).toBe(true);
    expect(ha.closed).toBe(true);
    expect(rtnlPortsOfMine(a)).toEqual([]);
    expect(pool.release(a.path)).toBe(false);
    const again = pool.get(a.path);
    expect(again).not.toBe(ha);
    expect(rtnlPortsOfMine(a)).toEqual([again.port]);
  });

  it('an open handle pins its namespace; closing it lets the namespace go', async () => {
    const [a, b] = await Promise.all([makeNs('pina'), makeNs('pinb')]);
    const hb = NetlinkHandle.open(b.path);
    try {
      await addVeth(hb, { name: 'inB', peer: { name: 'inA', nsPath: a.path } });
      await b.delete();
      // B's name is gone, but the socket keeps the namespace (and so the veth) alive.
      await new Promise((r) => setTimeout(r, 300));
      expect(await a.linkNames()).toEqual(['inA', 'lo']);
    } finally {
      hb.close();
    }
    expect(await eventually(async () => (await a.linkNames()).length === 1, 10_000)).toBe(true);
    expect(await a.linkNames()).toEqual(['lo']);
  });

  it('deletes links in the background: the event loop runs meanwhile, errors come back, close waits for it', async () => {
    const ns = await makeNs('bgdel');
    const h = NetlinkHandle.open(ns.path);
    try {
      for (const i of [0, 1]) await addVeth(h, { name: `bg${i}`, up: true, peer: { name: `bgp${i}` } });
      const deleted = deleteLink(h, 'bg0');
      const first = await Promise.race([deleted.then(() => 'deleted'), new Promise<string>((r) => setImmediate(() => r('event loop')))]);
      expect(first).toBe('event loop');
      expect(await deleted).toBe(true);
      expect(await ns.linkNames()).toEqual(['bg1', 'bgp1', 'lo']);
      await expect(deleteLink(h, 'bg0')).rejects.toMatchObject({ name: 'KernelError', errnoCode: 'ENODEV' });
      expect(await deleteLink(h, 'bg0', { ifExists: true })).toBe(false);
      const last = deleteLink(h, 'bg1');
      h.close();
      expect(await last).toBe(true);
      await expect(deleteLink(h, 'bgp1', { ifExists: true })).rejects.toMatchObject({ code: 'ERR_NETLINK_CLOSED' });
      expect(await ns.linkNames()).toEqual(['lo']);
      expect(rtnlPortsOfMine(ns)).toEqual([]);
    } finally {
      h.close();
    }
  });
});
