// cnmkit-overlay under three real Docker engines (Debian's docker.io) on three simulated hosts,
// each with its own cnmkit daemon in cluster mode (one real etcd on the underlay) and its own
// dockerd (its plugin folder is the daemon's). One `docker network create` per engine maps to one
// overlay; containers on the three engines get distinct addresses from the cluster, ping each other
// (all pairs) and reach the underlay (egress through the engine's docker_gwbridge); published ports
// answer on the host's underlay address. Most tests use the first two engines. After connect/disconnect, rm -f, an engine crash and a plugin
// crash (also one away longer than the engine's retries, which then hands the interfaces back), nothing stale is left: checked outside the code under test with `bridge -j fdb` and
// `ip -j neigh` in each host, and the peer keys read straight from etcd. A cluster-wide `cnmkit
// network rm` does not pull a network from under an engine that has it. IPv6 (--ipv6, with and
// without a v6 subnet): v6 addresses from the cluster's pool, ping6 across, v6 neighbours.
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { SimCluster, simCli, storedPeers, waitFor, ETCD, UNDERLAY_IP, type SimHost, type StoredPeer } from '../helpers/cluster.js';
import { run } from '../helpers/exec.js';
import { fdbRows, neighRows } from '../helpers/entries.js';
import { BUSYBOX_IMAGE, describeDocker, Dockerd, dockerSkipReason } from '../helpers/dockerd.js';

const skipReason = (await dockerSkipReason()) ?? (fs.existsSync(ETCD) ? undefined : `the overlay's Docker test needs ${ETCD} (Debian etcd-server; scripts/setup installs it)`);
const IMAGE = BUSYBOX_IMAGE;
const NET = 'dov';
const CREATE = ['network', 'create', '-d', 'cnmkit-overlay', '--ipam-driver', 'cnmkit-ipam', '--ipam-opt', `cnmkit.overlay.name=${NET}`];
/** Each engine's own bridge and pools, apart from the daemons' (198.18.0.0/24, 198.18.128.0/17) and the cluster's (198.19.0.0/16). */
const ENGINE_ARGS = [
  ['--bip', '198.18.1.1/24', '--default-address-pool', 'base=198.18.64.0/19,size=24'],
  ['--bip', '198.18.2.1/24', '--default-address-pool', 'base=198.18.96.0/19,size=24'],
  ['--bip', '198.18.3.1/24', '--default-address-pool', 'base=198.18.32.0/19,size=24'],
];

let sim: SimCluster;
let hosts: [SimHost, SimHost, SimHost];
let engines: [Dockerd, Dockerd, Dockerd];
let vxlan = '';

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  await waitFor(what, async () => ((await fn()) ? true : undefined), ms);
}

async function ipOf(e: Dockerd, container: string): Promise<string> {
  return (await e.inspect(['container', 'inspect', container]))[0].NetworkSettings.Networks[NET].IPAddress as string;
}

async function macOf(e: Dockerd, container: string): Promise<string> {
  return (await e.inspect(['container', 'inspect', container]))[0].NetworkSettings.Networks[NET].MacAddress as string;
}

async function reaches(e: Dockerd, from: string, to: string): Promise<boolean> {
  return (await e.docker(['exec', from, 'ping', '-c', '1', '-W', '2', to])).code === 0;
}

/** The overlay's peer records, read from etcd itself, by address. */
async function peers(): Promise<StoredPeer[]> {
  return (await storedPeers(sim, NET)).sort((a, b) => a.ip.localeCompare(b.ip));
}

/** The endpoint addresses claimed in etcd in the overlay's pool (its gateway left out). */
async function claimed(): Promise<string[]> {
  const subnet = (await engines[0].inspect(['network', 'inspect', NET]))[0].IPAM.Config[0].Subnet as string;
  const prefix = `/cnmkit/v1/ipam/addresses/${subnet.replace('/', '_')}/`;
  const client = sim.etcd.client();
  try {
    return (await client.range(prefix)).kvs.filter((kv) => (JSON.parse(kv.value.toString()) as { kind: string }).kind === 'endpoint')
      .map((kv) => kv.key.slice(prefix.length)).sort();
  } finally {
    client.close();
  }
}

async function hasVxlan(h: SimHost): Promise<boolean> {
  return (JSON.parse(await h.ns.sh(['ip', '-j', 'link', 'show'])) as { ifname: string }[]).some((l) => l.ifname === vxlan);
}

/** Host h's static entries on the overlay's VXLAN device: FDB (mac → VTEP) and neighbours (ip → mac). */
async function kernelEntries(h: SimHost): Promise<{ fdb: string[]; neigh: string[] }> {
  if (!(await hasVxlan(h))) return { fdb: [], neigh: [] };
  const fdb = (await fdbRows(h.ns, vxlan))
    .filter((e) => e.flags?.includes('self') && e.dst !== undefined).map((e) => `${e.mac} ${e.dst}`).sort();
  const neigh = (await neighRows(h.ns, vxlan)).map((n) => `${n.dst} ${n.lladdr}`).sort();
  return { fdb, neigh };
}

/** What host h must have programmed: every peer of the other hosts (and a flood entry to each that has any), nothing else. */
function expected(h: SimHost, all: StoredPeer[]): { fdb: string[]; neigh: string[] } {
  const remote = all.filter((p) => p.vtep !== h.ip);
  const vteps = [...new Set(remote.map((p) => p.vtep))];
  return {
    fdb: [...remote.map((p) => `${p.mac} ${p.vtep}`), ...vteps.map((v) => `00:00:00:00:00:00 ${v}`)].sort(),
    neigh: remote.map((p) => `${p.ip.split('/')[0]} ${p.mac}`).sort(),
  };
}

/**
 * Every host's kernel entries match the peer records, which are exactly `containers` (engine, name)
 * by address and MAC. A host with no endpoint and without the overlay's devices (never created
 * there, or its last endpoint gone) follows no peers: it must hold none.
 */
async function expectNoStale(containers: [Dockerd, string][]): Promise<void> {
  const want = (await Promise.all(containers.map(async ([e, c]) => `${await ipOf(e, c)} ${await macOf(e, c)}`))).sort();
  await until(`peer records ${JSON.stringify(want)}`, async () => JSON.stringify((await peers()).map((p) => `${p.ip.split('/')[0]} ${p.mac}`)) === JSON.stringify(want));
  const all = await peers();
  const ips = want.map((w) => w.split(' ')[0]!).sort();
  await until(`addresses claimed in etcd ${JSON.stringify(ips)}`, async () => JSON.stringify(await claimed()) === JSON.stringify(ips), 5000)
    .catch(async (err: Error) => {
      throw new Error(`${err.message}: have ${JSON.stringify(await claimed())}`);
    });
  for (const h of hosts) {
    if (!all.some((p) => p.vtep === h.ip) && !(await hasVxlan(h))) continue;
    await until(`host ${h.index}'s FDB and neighbours`, async () => JSON.stringify(await kernelEntries(h)) === JSON.stringify(expected(h, all)), 5000)
      .catch(async (err: Error) => {
        throw new Error(`${err.message}: have ${JSON.stringify(await kernelEntries(h))}, want ${JSON.stringify(expected(h, all))}`);
      });
  }
}

const run1 = (e: Dockerd, name: string, extra: string[] = []) => e.dockerOk(['run', '-d', '--name', name, '--network', NET, ...extra, IMAGE, 'sleep', '600']);

/** c1 on engine 1, c2 and c3 on engine 2, every host programmed for them. */
async function runC1C2C3(e1: Dockerd, e2: Dockerd): Promise<void> {
  await run1(e1, 'c1');
  await run1(e2, 'c2');
  await run1(e2, 'c3');
  await expectNoStale([[e1, 'c1'], [e2, 'c2'], [e2, 'c3']]);
}

describeDocker('cnmkit-overlay under three Docker engines on three simulated hosts', skipReason, () => {
  beforeAll(async () => {
    sim = await SimCluster.create({ hosts: 3, leaseTtl: 3 });
    hosts = sim.hosts as [SimHost, SimHost, SimHost];
    for (const h of hosts) await h.daemon.start();
    engines = await Promise.all(hosts.map((h, i) => Dockerd.start(h.ns, { args: ENGINE_ARGS[i]!, pluginDir: path.join(h.daemon.dir, 'plugins') }))) as [Dockerd, Dockerd, Dockerd];
    for (const e of engines) await e.buildImage();
  }, 240_000);

  afterEach(async () => {
    for (const e of engines) {
      const ids = (await e.dockerOk(['ps', '-aq'])).split('\n').filter(Boolean);
      if (ids.length > 0) await e.dockerOk(['rm', '-f', ...ids]);
    }
  }, 120_000);

  afterAll(async () => {
    for (const e of engines ?? []) await e?.cleanup();
    await sim?.destroy();
  }, 120_000);

  it('one docker network create per engine (three) is one overlay: same subnet and VNI; containers on the three get distinct addresses, ping all pairs across hosts and reach the underlay', async () => {
    const [e1, e2, e3] = engines;
    await e1.dockerOk([...CREATE, NET]);
    const subnet = (await e1.inspect(['network', 'inspect', NET]))[0].IPAM.Config[0].Subnet as string;
    // Refused on the second engine, naming what differs from the cluster's overlay or what to add.
    const refusals: [string[], string][] = [
      [[...CREATE, '--subnet', '198.19.99.0/24', NET], `exists in the cluster with subnet ${subnet}, not 198.19.99.0/24`],
      [[...CREATE, '--internal', NET], 'internal: true here, false in the cluster'],
      [[...CREATE, '-o', 'com.docker.network.driver.mtu=1300', NET], 'options.com.docker.network.driver.mtu: "1300" here, unset in the cluster'],
      [['network', 'create', '-d', 'cnmkit-overlay', '--ipam-driver', 'cnmkit-ipam', NET], 'add --ipam-driver cnmkit-ipam --ipam-opt cnmkit.overlay.name=NAME'],
      [['network', 'create', '-d', 'cnmkit-overlay', NET], 'add --ipam-driver cnmkit-ipam --ipam-opt cnmkit.overlay.name=NAME'],
    ];
    for (const [args, message] of refusals) {
      const r = await e2.docker(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr).toContain(message);
    }
    expect((await e2.dockerOk(['network', 'ls', '--format', '{{.Name}}'])).split('\n')).not.toContain(NET);
    await e2.dockerOk([...CREATE, NET]);
    await e3.dockerOk([...CREATE, NET]);
    // One engine, one Docker network per overlay: the overlay's name is taken on this host.
    const again = await e2.docker([...CREATE, 'dov-again']);
    expect(again.stderr).toContain(`overlay network ${NET} is already used here by the Docker network ${(await e2.inspect(['network', 'inspect', NET]))[0].Id.slice(0, 12)} of this engine`);
    const [n1, n2, n3] = await Promise.all(engines.map(async (e) => (await e.inspect(['network', 'inspect', NET]))[0]));
    expect(n1.IPAM.Config[0].Subnet).toMatch(/^198\.19\./);
    for (const n of [n2, n3]) {
      expect(n.IPAM.Config[0].Subnet).toBe(n1.IPAM.Config[0].Subnet);
      expect(n.IPAM.Config[0].Gateway).toBe(n1.IPAM.Config[0].Gateway);
    }
    const g = await Promise.all(hosts.map(async (h) => (JSON.parse(await simCli(h, ['network', 'inspect', NET, '--format', 'json'])) as { scope: string; global: { vni: number } }[])[0]!));
    expect(g.map((n) => n.scope)).toEqual(['global', 'global', 'global']);
    expect(new Set(g.map((n) => n.global.vni)).size).toBe(1);
    vxlan = `ovvx${g[0]!.global.vni}`;

    const on: [Dockerd, string][] = [[e1, 'c1'], [e2, 'c2'], [e3, 'c3']];
    for (const [e, c] of on) await run1(e, c);
    const ips = await Promise.all(on.map(([e, c]) => ipOf(e, c)));
    expect(new Set(ips).size).toBe(3);
    // A run answers once the container's peer is in etcd; the other hosts program it when their watch delivers it.
    await expectNoStale(on);
    for (const [i, [e, c]] of on.entries()) {
      for (const [j, ip] of ips.entries()) if (j !== i) expect(await reaches(e, c, ip), `${c} → ${ip}`).toBe(true);
      // Egress: the underlay's own address, through the engine's docker_gwbridge (the container's default route).
      expect(await reaches(e, c, UNDERLAY_IP), `${c} → the underlay ${UNDERLAY_IP}`).toBe(true);
    }
    await e3.dockerOk(['rm', '-f', 'c3']);
    await expectNoStale([[e1, 'c1'], [e2, 'c2']]);
  });

  it('-p on an overlay container answers on the host\'s underlay address (through the engine\'s docker_gwbridge)', async () => {
    const [e1] = engines;
    await e1.dockerOk(['run', '-d', '--name', 'web', '--network', NET, '-p', '8080:80', IMAGE, 'sh', '-c', 'echo overlay-web > /var/www/index.html; exec httpd -f -p 80 -h /var/www']);
    const url = `http://${hosts[0].ip}:8080/`;
    let body = '';
    await until('published port', async () => {
      body = (await run(['ip', 'netns', 'exec', sim.underlay.name, 'curl', '-s', '--max-time', '2', url])).stdout;
      return body.includes('overlay-web');
    }, 10_000);
    expect(body.trim()).toBe('overlay-web');
  });

  it('connect/disconnect and rm -f leave no stale peer or kernel entry on any host', async () => {
    const [e1, e2] = engines;
    await run1(e1, 'c1');
    await e2.dockerOk(['run', '-d', '--name', 'mover', IMAGE, 'sleep', '600']);
    await e2.dockerOk(['network', 'connect', NET, 'mover']);
    const ipMover = await ipOf(e2, 'mover');
    await expectNoStale([[e1, 'c1'], [e2, 'mover']]);
    expect(await reaches(e1, 'c1', ipMover)).toBe(true);
    await e2.dockerOk(['network', 'disconnect', NET, 'mover']);
    expect(await reaches(e1, 'c1', ipMover)).toBe(false);
    await expectNoStale([[e1, 'c1']]);
    await run1(e2, 'c2');
    await expectNoStale([[e1, 'c1'], [e2, 'c2']]);
    await e2.dockerOk(['rm', '-f', 'c2']);
    await expectNoStale([[e1, 'c1']]);
  });

  it('an engine crash (SIGKILL of dockerd and its containers, then restart): the lost containers\' peers and addresses go without a word from the engine', async () => {
    const [e1, e2] = engines;
    await run1(e1, 'c1');
    await run1(e2, 'c2');
    await expectNoStale([[e1, 'c1'], [e2, 'c2']]);
    await e2.restart({ crash: true });
    // The restarted engine says nothing to the plugin about the containers it lost: their interfaces are gone, so are their peers.
    await expectNoStale([[e1, 'c1']]);
    await e2.dockerOk(['rm', '-f', 'c2']);
    await run1(e2, 'c3');
    await expectNoStale([[e1, 'c1'], [e2, 'c3']]);
    expect(await reaches(e2, 'c3', await ipOf(e1, 'c1'))).toBe(true);
  });

  it('a plugin crash (SIGKILL of the daemon, restart): containers keep working, one removed meanwhile leaves no stale peer', async () => {
    const [e1, e2] = engines;
    await runC1C2C3(e1, e2);
    await hosts[1].daemon.stop('SIGKILL');
    expect(await reaches(e1, 'c1', await ipOf(e2, 'c2'))).toBe(true);
    // Removed while the plugin is down: the engine's Leave/DeleteEndpoint fail or wait for the plugin to return.
    const rm = e2.docker(['rm', '-f', 'c3']);
    await new Promise((r) => setTimeout(r, 1000));
    await hosts[1].daemon.start();
    await rm;
    await until('c3 gone', async () => !(await e2.dockerOk(['ps', '-a', '--format', '{{.Names}}'])).split('\n').includes('c3'));
    await expectNoStale([[e1, 'c1'], [e2, 'c2']]);
    expect(await reaches(e1, 'c1', await ipOf(e2, 'c2'))).toBe(true);
    await run1(e2, 'c4');
    await expectNoStale([[e1, 'c1'], [e2, 'c2'], [e2, 'c4']]);
    expect(await reaches(e1, 'c1', await ipOf(e2, 'c4'))).toBe(true);
  });

  it('a disconnect and a stop while the plugin is away longer than the engine retries (it gives up and takes the interface back): the restarted plugin drops their peers, addresses and veths', async () => {
    const [e1, e2] = engines;
    await runC1C2C3(e1, e2);
    const ids = await Promise.all(['c2', 'c3'].map(async (c) => ((await e2.inspect(['container', 'inspect', c]))[0].NetworkSettings.Networks[NET].EndpointID as string).slice(0, 10)));
    await hosts[1].daemon.stop('SIGKILL');
    // The engine retries each plugin call for about 15 s, then goes on without the plugin (exit 0),
    // moving each container end back to its own namespace (the daemon's).
    await Promise.all([e2.dockerOk(['network', 'disconnect', NET, 'c2'], { timeoutMs: 120_000 }), e2.dockerOk(['stop', '-t', '1', 'c3'], { timeoutMs: 120_000 })]);
    await hosts[1].daemon.start();
    await expectNoStale([[e1, 'c1']]);
    // Their veths (both ends named after the endpoint) are gone from the host too.
    const theirs = async () => (JSON.parse(await hosts[1].ns.sh(['ip', '-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname).filter((n) => ids.some((id) => n.endsWith(id)));
    await until('their veths gone', async () => (await theirs()).length === 0, 5000).catch(async (err: Error) => {
      throw new Error(`${err.message}: have ${JSON.stringify(await theirs())}`);
    });
    await run1(e2, 'c4');
    await expectNoStale([[e1, 'c1'], [e2, 'c4']]);
    expect(await reaches(e1, 'c1', await ipOf(e2, 'c4'))).toBe(true);
  }, 180_000);

  it('-p on an --internal overlay: the container runs with no way out and nothing published (as with Docker\'s own overlay: no gateway leg, no ports asked), and the daemon logs a warning naming the endpoint and the network', async () => {
    const [e1] = engines;
    const name = 'dov-sealed';
    const id = await e1.dockerOk(['network', 'create', '-d', 'cnmkit-overlay', '--ipam-driver', 'cnmkit-ipam', '--ipam-opt', `cnmkit.overlay.name=${name}`, '--internal', name]);
    await e1.dockerOk(['run', '-d', '--name', 'sealed', '--network', name, '-p', '8088:80', IMAGE, 'sleep', '600']);
    const ep = (await e1.inspect(['container', 'inspect', 'sealed']))[0].NetworkSettings.Networks[name].EndpointID as string;
    // One interface and no default route: no docker_gwbridge leg to publish through.
    expect((await e1.dockerOk(['exec', 'sealed', 'ip', '-o', 'link'])).split('\n').filter((l) => /: eth\d+[@:]/.test(l))).toHaveLength(1);
    expect(await e1.dockerOk(['exec', 'sealed', 'ip', 'route'])).not.toMatch(/^default/m);
    const warned = () => hosts[0].daemon.records().some((r) => {
      const o = r as { level?: number; endpoint?: string; network?: string; dockerNetwork?: string; ports?: string[] };
      return o.level === 40 && o.endpoint === ep && o.network === name && o.dockerNetwork === id && o.ports?.length === 1 && o.ports[0]!.endsWith('8088:80/tcp');
    });
    await until('the warning in the daemon\'s log', warned, 5000);
    await e1.dockerOk(['rm', '-f', 'sealed']);
    await e1.dockerOk(['network', 'rm', name]);
  });

  it('cnmkit network rm on a host without the engine network is refused while another engine has it (naming that engine\'s network); docker network rm there removes it from the cluster', async () => {
    const [e1] = engines;
    const name = 'dov-held';
    const inEtcd = async () => {
      const client = sim.etcd.client();
      try {
        return (await client.range(`/cnmkit/v1/networks/${name}`, { prefix: false })).kvs.length === 1;
      } finally {
        client.close();
      }
    };
    await e1.dockerOk(['network', 'create', '-d', 'cnmkit-overlay', '--ipam-driver', 'cnmkit-ipam', '--ipam-opt', `cnmkit.overlay.name=${name}`, name]);
    const id = (await e1.inspect(['network', 'inspect', name]))[0].Id as string;
    const refused = await hosts[1].daemon.cmd(['network', 'rm', name]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`network ${name} is the Docker network ${id.slice(0, 12)} of the engine on \\S+ \\(${hosts[0].ip.replaceAll('.', '\\.')}\\): remove it there with docker network rm`));
    // Nothing was removed: the cluster keeps the record and the engine's network still takes containers.
    expect(await inEtcd()).toBe(true);
    await e1.dockerOk(['run', '-d', '--name', 'held', '--network', name, IMAGE, 'sleep', '600']);
    const ip = (await e1.inspect(['container', 'inspect', 'held']))[0].NetworkSettings.Networks[name].IPAddress as string;
    expect(ip).toMatch(/^198\.19\./);
    await e1.dockerOk(['rm', '-f', 'held']);
    await e1.dockerOk(['network', 'rm', name]);
    await until(`${name} gone from etcd`, async () => !(await inEtcd()));
    const gone = await hosts[1].daemon.cmd(['network', 'rm', name]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('not found');
  });

  // IPv6 on a cnmkit-overlay network (--ipv6): with a v6 subnet asked for, and without one (the
  // cluster's IPAM picks a ULA /64). Each variant is its own overlay, removed at its end.
  for (const [variant, name, v6Subnet] of [['with a v6 subnet', 'dov6s', 'fd00:c6:d0c::/64'], ['without one (a ULA /64 from the cluster)', 'dov6u', undefined]] as const) {
    it(`IPv6 ${variant}: containers on two engines get v6 addresses from the cluster's pool and ping6 across hosts; the other host's v6 neighbour goes with rm -f`, async () => {
      const [e1, e2] = engines;
      const create = ['network', 'create', '-d', 'cnmkit-overlay', '--ipam-driver', 'cnmkit-ipam', '--ipam-opt', `cnmkit.overlay.name=${name}`, '--ipv6', ...(v6Subnet ? ['--subnet', v6Subnet] : [])];
      try {
        for (const e of engines) await e.dockerOk([...create, name]);
        const g = (JSON.parse(await simCli(hosts[0], ['network', 'inspect', name, '--format', 'json'])) as { enableIPv6: boolean; ipv6: { subnet: string }[]; global: { vni: number } }[])[0]!;
        expect(g.enableIPv6).toBe(true);
        const subnet6 = g.ipv6[0]!.subnet;
        if (v6Subnet) expect(subnet6).toBe(v6Subnet);
        else expect(subnet6).toMatch(/^fd[0-9a-f]{2}:[0-9a-f:]*\/64$/);
        for (const e of engines) {
          const cfg = ((await e.inspect(['network', 'inspect', name]))[0].IPAM.Config as { Subnet: string }[]).map((c) => c.Subnet);
          expect(cfg).toContain(subnet6);
        }
        const vx = `ovvx${g.global.vni}`;
        const settings = async (e: Dockerd, c: string) => (await e.inspect(['container', 'inspect', c]))[0].NetworkSettings.Networks[name] as { IPAddress: string; GlobalIPv6Address: string; MacAddress: string };
        await e1.dockerOk(['run', '-d', '--name', 'v6a', '--network', name, IMAGE, 'sleep', '600']);
        await e2.dockerOk(['run', '-d', '--name', 'v6b', '--network', name, IMAGE, 'sleep', '600']);
        const [a, b] = [await settings(e1, 'v6a'), await settings(e2, 'v6b')];
        const prefix = subnet6.split('::')[0]!;
        for (const s of [a, b]) expect(s.GlobalIPv6Address.startsWith(`${prefix}:`)).toBe(true);
        expect(a.GlobalIPv6Address).not.toBe(b.GlobalIPv6Address);
        // The addresses are the cluster's: claimed in etcd, in the overlay's IPv6 pool.
        const client = sim.etcd.client();
        const claimed6 = async () => (await client.range(`/cnmkit/v1/ipam/addresses/${subnet6.replace('/', '_')}/`)).kvs
          .filter((kv) => (JSON.parse(kv.value.toString()) as { kind: string }).kind === 'endpoint').map((kv) => kv.key.split('/').pop()!).sort();
        try {
          expect(await claimed6()).toEqual([a.GlobalIPv6Address, b.GlobalIPv6Address].sort());
          // The container's own view: the address on its interface (not only in the engine's record).
          expect(await e1.dockerOk(['exec', 'v6a', 'ip', '-6', 'addr', 'show'])).toContain(`${a.GlobalIPv6Address}/64`);
          const entries = async (h: SimHost) => ({
            fdb: (await fdbRows(h.ns, vx)).filter((e) => e.flags?.includes('self')).map((e) => `${e.mac} ${e.dst}`),
            neigh: (await neighRows(h.ns, vx)).map((n) => `${n.dst} ${n.lladdr} ${(n.state ?? []).join(',')}`),
          });
          // A run answers once the container's peer is in etcd; the other host programs it when its watch delivers it.
          await until('each host holds the other container\'s v6 neighbour', async () =>
            (await entries(hosts[0])).neigh.includes(`${b.GlobalIPv6Address} ${b.MacAddress} PERMANENT`) && (await entries(hosts[1])).neigh.includes(`${a.GlobalIPv6Address} ${a.MacAddress} PERMANENT`), 5000);
          expect((await e1.docker(['exec', 'v6a', 'ping6', '-c', '1', '-W', '2', b.GlobalIPv6Address])).code).toBe(0);
          expect((await e2.docker(['exec', 'v6b', 'ping6', '-c', '1', '-W', '2', a.GlobalIPv6Address])).code).toBe(0);
          // Host 2 holds a's static entries (its v4 neighbour and FDB entry too), read from the kernel.
          const onHost2 = await entries(hosts[1]);
          expect(onHost2.fdb).toContain(`${a.MacAddress} ${hosts[0].ip}`);
          expect(onHost2.neigh).toEqual(expect.arrayContaining([`${a.IPAddress} ${a.MacAddress} PERMANENT`, `${a.GlobalIPv6Address} ${a.MacAddress} PERMANENT`]));
          expect((await entries(hosts[0])).neigh).toContain(`${b.GlobalIPv6Address} ${b.MacAddress} PERMANENT`);
          await e1.dockerOk(['rm', '-f', 'v6a']);
          await until('a\'s entries gone from host 2', async () => {
            const now = await entries(hosts[1]);
            return !now.fdb.some((l) => l.startsWith(`${a.MacAddress} `)) && !now.neigh.some((l) => l.includes(a.MacAddress));
          }, 5000);
          expect(await claimed6()).toEqual([b.GlobalIPv6Address]);
        } finally {
          client.close();
        }
      } finally {
        for (const e of engines) {
          const ids = (await e.dockerOk(['ps', '-aq'])).split('\n').filter(Boolean);
          if (ids.length > 0) await e.dockerOk(['rm', '-f', ...ids]);
          await e.docker(['network', 'rm', name]);
        }
      }
    });
  }

  it('docker network rm on every engine removes the overlay from the cluster', async () => {
    for (const e of engines) await e.dockerOk(['network', 'rm', NET]);
    const client = sim.etcd.client();
    try {
      await until('overlay gone from etcd', async () => (await client.range(`/cnmkit/v1/networks/${NET}`, {})).kvs.length === 0, 5000);
    } finally {
      client.close();
    }
    expect(await peers()).toEqual([]);
  });
});
