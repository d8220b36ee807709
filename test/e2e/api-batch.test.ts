// POST /v1/batch against a real daemon in a throwaway "host" namespace: networks, sandboxes with
// their connections, a link and each sandbox's settings made in one request, checked in the
// kernel with iproute2 and in the hosts files; a failing item stops the batch, is named by its
// field (`sandboxes[1].connect[0]`) and the object's name, and the items before it stay made;
// settings with no sysctl, route or neighbour leave the daemon no socket in the sandbox's namespace.
import fs from 'node:fs';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { ApiError, Client } from '../../src/client/index.js';
import { describeRoot } from '../helpers/root.js';
import { adoptNs, makeNs, uniqueName, type TestNs } from '../helpers/netns.js';
import { TestDaemon } from '../helpers/daemon.js';
import { check } from '../helpers/exec.js';

interface Sandbox { name: string; endpoints: Array<{ ipv4?: string; ifname?: string }> }
interface Answer { networks: Array<{ name: string }>; sandboxes: Sandbox[]; links: Array<{ name: string; ends: Array<{ ifname: string }> }> }

describeRoot('POST /v1/batch', () => {
  let host: TestNs;
  let daemon: TestDaemon;
  let api: Client;
  const made: string[] = [];

  beforeEach(async () => {
    host = await makeNs('batch');
    daemon = new TestDaemon(host, ['--firewall-backend', 'none']);
    await daemon.start();
    api = new Client(daemon.socket);
  });

  afterEach(async () => {
    for (const name of made.splice(0)) await api.request('DELETE', `/v1/sandboxes/${name}`).catch(() => undefined);
    await daemon.cleanup();
  });

  const sandboxName = (): string => {
    const name = uniqueName('bt');
    adoptNs(name);
    made.push(name);
    return name;
  };

  it('makes networks, sandboxes with their connections, links and settings in one request, in order', async () => {
    const [a, b] = [sandboxName(), sandboxName()];
    const r = await api.request<Answer>('POST', '/v1/batch', {
      networks: [{ name: 'bt1', subnet: '198.19.210.0/24' }, { name: 'bt2', subnet: '198.19.211.0/24' }],
      sandboxes: [
        { name: a, connect: [{ network: 'bt1', ip: '198.19.210.10' }] },
        { name: b, connect: [{ network: 'bt1' }, { network: 'bt2', ip: '198.19.211.20' }] },
      ],
      links: [{ name: 'a-b', ends: [{ sandbox: a, ifname: 'p0', address: '198.19.212.1/30' }, { sandbox: b, ifname: 'p0', address: '198.19.212.2/30' }], mtu: 1400 }],
      configs: [
        { sandbox: a, sysctls: { 'net.ipv4.ip_forward': '1' }, routes: [{ dst: '198.19.213.0/24', via: '198.19.212.2' }], hosts: [{ ip: '198.19.211.20', names: ['bee'] }] },
        { sandbox: b, hosts: [{ ip: '198.19.210.10', names: ['ay'] }] },
      ],
    });
    expect(r.networks.map((n) => n.name)).toEqual(['bt1', 'bt2']);
    expect(r.sandboxes.map((s) => s.name)).toEqual([a, b]);
    expect(r.sandboxes[1]!.endpoints.map((e) => e.ifname).sort()).toEqual(['eth0', 'eth1']);
    expect(r.links[0]!.ends.map((e) => e.ifname)).toEqual(['p0', 'p0']);

    expect(await check(['ip', '-n', a, '-br', 'addr', 'show', 'eth0'])).toContain('198.19.210.10/24');
    expect(await check(['ip', '-n', b, '-br', 'addr', 'show', 'eth1'])).toContain('198.19.211.20/24');
    const p0 = JSON.parse(await check(['ip', '-n', a, '-j', 'addr', 'show', 'p0'])) as Array<{ mtu: number; addr_info: Array<{ local: string }> }>;
    expect(p0[0]!.mtu).toBe(1400);
    expect(p0[0]!.addr_info.map((x) => x.local)).toContain('198.19.212.1');
    expect(await check(['ip', 'netns', 'exec', a, 'cat', '/proc/sys/net/ipv4/ip_forward'])).toBe('1\n');
    expect(await check(['ip', '-n', a, 'route', 'show', '198.19.213.0/24'])).toContain('via 198.19.212.2 dev p0');
    expect(fs.readFileSync(`/etc/netns/${a}/hosts`, 'utf8')).toMatch(/^198\.19\.211\.20\tbee$/m);
    expect(await check(['ip', 'netns', 'exec', a, 'ping', '-c', '1', '-W', '2', '198.19.212.2'])).toContain('1 received');
  });

  it('settings with only a hosts file (no sysctls, routes or neighbours) write it and leave no socket of the daemon in the namespace', async () => {
    const a = sandboxName();
    await api.request('POST', '/v1/batch', { networks: [{ name: 'bt4', subnet: '198.19.215.0/24' }], sandboxes: [{ name: a, connect: [{ network: 'bt4' }] }] });
    // The namespace's netlink sockets (its /proc/net/netlink) whose inode is one of the daemon's open files.
    const daemonSockets = async (): Promise<string[]> => {
      const mine = new Set(fs.readdirSync(`/proc/${daemon.proc!.pid}/fd`).map((fd) => { try { return fs.readlinkSync(`/proc/${daemon.proc!.pid}/fd/${fd}`); } catch { return ''; } }));
      const rows = (await check(['ip', 'netns', 'exec', a, 'cat', '/proc/net/netlink'])).trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
      return rows.filter((r) => mine.has(`socket:[${r.at(-1)}]`)).map((r) => r.join(' '));
    };
    expect(await daemonSockets()).toEqual([]);
    await api.request('POST', '/v1/batch', { configs: [{ sandbox: a, sysctls: {}, routes: [], neighbors: [], hosts: [{ ip: '198.19.215.9', names: ['nine'] }] }] });
    expect(fs.readFileSync(`/etc/netns/${a}/hosts`, 'utf8')).toMatch(/^198\.19\.215\.9\tnine$/m);
    expect(await daemonSockets()).toEqual([]);
  });

  it('stops at the first failing item, names it, and keeps the items before it', async () => {
    await api.request('POST', '/v1/networks', { name: 'bt3', subnet: '198.19.214.0/24' });
    const [ok, bad, after] = [sandboxName(), sandboxName(), sandboxName()];
    const err = await api.request('POST', '/v1/batch', {
      sandboxes: [
        { name: ok, connect: [{ network: 'bt3' }] },
        { name: bad, connect: [{ network: 'nosuch' }] },
        { name: after, connect: [{ network: 'bt3' }] },
      ],
    }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    const e = err as ApiError;
    expect(e.status).toBe(404);
    expect(e.field).toMatch(/^sandboxes\[1\]\.connect\[0\]/);
    expect(e.message).toMatch(new RegExp(`^sandbox ${bad}: network nosuch: .*nosuch`));
    const names = (await api.request<Sandbox[]>('GET', '/v1/sandboxes')).map((s) => s.name);
    expect(names).toContain(ok);
    expect(names).not.toContain(bad);
    expect(names).not.toContain(after);
    expect(fs.existsSync(`/run/netns/${bad}`)).toBe(false);
    expect(await check(['ip', '-n', ok, '-br', 'addr', 'show', 'eth0'])).toContain('198.19.214.');
  });
});
