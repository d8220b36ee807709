// cnmkit lab end to end (issue 12, item 9), each lab run from a throwaway namespace standing for
// the machine: the examples go up, pass `check`, and come down leaving that namespace as it was
// and no namespace, /etc/netns folder or process behind; up twice; down after SIGKILL of `up`
// halfway and of a host daemon; two labs at once; a changed file; refusals. Independent checks
// with iproute2, tc and real packets.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { check, run } from '../helpers/exec.js';
import { CLI } from '../helpers/daemon.js';
import { EXAMPLES, etcNetnsWith, LabRunner, labName, namespacesWith, netState, pidAlive } from '../helpers/lab.js';

let machine: TestNs;
let labs: LabRunner;
let before: string;

const example = (f: string): string => path.join(EXAMPLES, f);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Everything a lab named name leaves: namespaces, /etc/netns folders, and the machine's diff. */
async function leftovers(name: string): Promise<{ namespaces: string[]; etc: string[]; machineChanged: boolean }> {
  return { namespaces: await namespacesWith(`${name}-`), etc: etcNetnsWith(`${name}-`), machineChanged: (await netState(machine)) !== before };
}

const clean = { namespaces: [], etc: [], machineChanged: false };

/**
 * ping's output once node namespace ns has had an answer from addr (one echo a try, 10 s at most):
 * an overlay's peers reach the other host's kernel a moment after `lab up` returns (as `lab check` allows).
 */
async function pingsAcross(ns: string, addr: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await run(['ip', 'netns', 'exec', ns, 'ping', '-c', '1', '-W', '1', addr]);
    if (r.code === 0 || Date.now() > deadline) return r.stdout;
  }
}

describeRoot('cnmkit lab', () => {
  beforeEach(async () => {
    machine = await makeNs('machine');
    labs = new LabRunner(machine);
    before = await netState(machine);
  });
  afterEach(async () => {
    await labs.cleanup();
  });

  it('triangle: up, check, names, shaping, routes, up again (no change), down, down again', async () => {
    const name = labName('tri');
    const up = await labs.ok(['up', '--name', name, example('triangle.yml')]);
    expect(up).toMatch(new RegExp(`lab ${name} up: 1 host\\(s\\), 3 network\\(s\\), 6 node\\(s\\), 3 link\\(s\\) in `));
    // The simulated host's daemon serves no Docker plugin sockets (--docker-plugins false).
    expect(fs.existsSync(path.join(labs.root, name, 'hosts', 'local', 'plugins'))).toBe(false);
    const checked = await labs.lab(['check', name]);
    expect(checked.stdout).toContain('30/30 pairs answered, 4/4 expectations met, 0 failure(s)');
    expect(checked.code).toBe(0);
    // Independently: the routers forward, r2's link to r3 is shaped by tbf at 100 Mbit/s, h1 routes through r1.
    expect((await check(['ip', 'netns', 'exec', `${name}-r1`, 'sysctl', '-n', 'net.ipv4.ip_forward'])).trim()).toBe('1');
    expect(await check(['tc', '-n', `${name}-r2`, 'qdisc', 'show', 'dev', 'eth2'])).toMatch(/^qdisc tbf \S+ root .*rate 100Mbit/);
    expect(await check(['tc', '-n', `${name}-r3`, 'qdisc', 'show', 'dev', 'eth2'])).toMatch(/^qdisc tbf \S+ root .*rate 100Mbit/);
    expect(await check(['ip', '-n', `${name}-h1`, 'route', 'show', 'default'])).toContain('via 198.19.1.254 dev eth0');
    // Names: the hosts file ip netns exec binds, seen by lab exec; h1 reaches h3 by name through two routers.
    expect(fs.readFileSync(`/etc/netns/${name}-h1/hosts`, 'utf8')).toContain('198.19.3.10\th3 h3.');
    const byName = await labs.lab(['exec', name, 'h1', '--', 'ping', '-c', '1', '-W', '2', 'h3']);
    expect(byName.stdout).toContain('1 received');
    const inspect = JSON.parse(await labs.ok(['inspect', name, '--format', 'json']));
    expect(inspect.nodes.find((n: { name: string }) => n.name === 'r1').interfaces.map((i: { ifname: string; ipv4?: string }) => `${i.ifname} ${i.ipv4}`))
      .toEqual(['eth0 198.19.1.254/24', 'eth1 198.19.12.1/30', 'eth2 198.19.13.1/30']);
    // The picture of the lab as it is up: the addresses the daemons gave, and Graphviz draws it.
    const graph = JSON.parse(await labs.ok(['graph', name, '--format', 'json']));
    expect(graph.nodes.find((n: { name: string }) => n.name === 'h1').interfaces).toEqual([{ ifname: 'eth0', network: 'lan1', address: '198.19.1.10/24' }]);
    expect(await labs.ok(['graph', name])).toMatch(/<svg[^]*198\.19\.1\.10\/24[^]*<\/svg>/);
    // Up again: nothing is made again (same sandboxes, same daemon).
    const pid = labs.state(name).daemons.local!.pid;
    const ids = await check(['ip', '-n', `${name}-r1`, '-j', 'link']);
    await labs.ok(['up', '--name', name, example('triangle.yml')]);
    expect(labs.state(name).daemons.local!.pid).toBe(pid);
    expect(await check(['ip', '-n', `${name}-r1`, '-j', 'link'])).toBe(ids);
    await labs.ok(['down', name]);
    expect(pidAlive(pid)).toBe(false);
    expect(await leftovers(name)).toEqual(clean);
    expect((await labs.ok(['down', name])).trim()).toBe(`lab ${name}: not up (nothing to remove)`);
  });

  it('triangle: a router deleted by hand is made again by up with the routes through its links on every router; a neighbour whose exec added one is named', async () => {
    const name = labName('trig');
    await labs.ok(['up', '--name', name, example('triangle.yml')]);
    await check(['ip', 'netns', 'del', `${name}-r2`]);
    expect((await labs.lab(['check', name])).code).toBe(1);
    const up = await labs.lab(['up', '--name', name, example('triangle.yml')]);
    expect(up.code).toBe(0);
    expect(up.stdout + up.stderr).not.toContain('note:');
    // r1's and r3's ends of the links to r2 are new, and so are their routes through them.
    expect(await check(['ip', '-n', `${name}-r1`, 'route', 'show', '198.19.2.0/24'])).toContain('via 198.19.12.2 dev eth1');
    expect(await check(['ip', '-n', `${name}-r3`, 'route', 'show', '198.19.2.0/24'])).toContain('via 198.19.23.1 dev eth2');
    expect(await check(['ip', '-n', `${name}-r2`, 'route', 'show', '198.19.1.0/24'])).toContain('via 198.19.12.1 dev eth1');
    expect((await labs.lab(['check', name])).code).toBe(0);
    await labs.ok(['down', name]);

    // The same lab with r1's routes added by exec: up cannot set them again, and says so.
    const dir = fs.mkdtempSync(path.join(labs.root, '..', 'cnmkit-lab-file-'));
    try {
      const f = path.join(dir, 'triangle-exec.yml');
      const text = fs.readFileSync(example('triangle.yml'), 'utf8')
        .replace('    routes:\n      - {dst: 198.19.2.0/24, via: 198.19.12.2}\n      - {dst: 198.19.3.0/24, via: 198.19.13.2}\n', '    exec:\n      - ip route add 198.19.2.0/24 via 198.19.12.2\n      - ip route add 198.19.3.0/24 via 198.19.13.2\n');
      expect(text).toContain('ip route add 198.19.2.0/24');
      fs.writeFileSync(f, text);
      await labs.ok(['up', '--name', name, f]);
      await check(['ip', 'netns', 'del', `${name}-r2`]);
      const again = await labs.lab(['up', '--name', name, f]);
      expect(again.code).toBe(0);
      expect(again.stdout + again.stderr).toContain('note: node r1: its link(s) to r2 were made again with that node; what its exec lines set through the old one(s) (routes) is gone');
      expect(again.stdout + again.stderr).not.toContain('note: node r3');
      expect(await check(['ip', '-n', `${name}-r1`, 'route', 'show', '198.19.2.0/24'])).toBe('');
      await labs.ok(['down', name]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(await leftovers(name)).toEqual(clean);
  });

  it('containerlab file: sandboxes, its bridge, mgmt addresses, a host: end in the machine namespace, one warning', async () => {
    const name = labName('clab');
    const up = await labs.lab(['up', '--name', name, example('clab.clab.yml')]);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    expect(up.stdout.match(/warning: containerlab fields ignored/g)).toHaveLength(1);
    expect(await check(['ip', '-n', machine.name, '-br', 'link', 'show', 'clab-n1'])).toContain('clab-n1');
    expect(await check(['ip', '-n', `${name}-n1`, '-br', 'addr', 'show', 'eth0'])).toContain('198.19.250.11/24');
    expect(await check(['ip', '-n', `${name}-n2`, '-br', 'link', 'show', 'eth2'])).toContain('eth2');
    const ping = await check(['ip', 'netns', 'exec', `${name}-n1`, 'ping', '-c', '1', '-W', '2', '198.19.10.2']);
    expect(ping).toContain('1 received');
    // The ports on bridge br1 have the addresses the exec lines set and no other, as in containerlab.
    const v4 = async (node: string, dev: string) => (JSON.parse(await check(['ip', '-n', `${name}-${node}`, '-j', '-4', 'addr', 'show', 'dev', dev])) as Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>)
      .flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
    expect([await v4('n2', 'eth2'), await v4('n3', 'eth1')]).toEqual([['198.19.20.2/24'], ['198.19.20.3/24']]);
    // Of the lab host's bridges (the daemon's default one, mgmt's, br1's), br1's alone has no address.
    const bridges = JSON.parse(await check(['ip', '-n', `${name}-local`, '-j', 'addr', 'show', 'type', 'bridge'])) as Array<{ addr_info: Array<{ family: string }> }>;
    expect(bridges.map((b) => b.addr_info.filter((a) => a.family === 'inet').length).sort()).toEqual([0, 1, 1]);
    expect(await check(['ip', 'netns', 'exec', `${name}-n2`, 'ping', '-c', '1', '-W', '2', '198.19.20.3'])).toContain('1 received');
    // The host daemon finds its address-less network as it made it (the exec lines' addresses are the nodes' own).
    const drift = await run([process.execPath, CLI, 'check', '--socket', labs.state(name).plan.hosts[0]!.socket]);
    expect([drift.code, drift.stdout]).toEqual([0, 'no drift: 5 networks checked (none, host, bridge, mgmt, br1)\n']);
    const checked = await labs.lab(['check', name]);
    expect(checked.stdout).toContain('0 failure(s)');
    expect(checked.stdout).toContain('  bridge br1 (n2:eth2, n3:eth1): a containerlab bridge: its ports get no address, as in containerlab');
    expect(checked.code).toBe(0);
    await labs.ok(['down', name]);
    expect(await leftovers(name)).toEqual(clean);
  });

  it('etcd runs on one Go processor and is asked nothing but by the daemons: an overlay lab comes up with no curl to run; an etcd that exits fails up at once with its log', async () => {
    // Stand-ins first on PATH: a curl that records each call and fails, and (second part) an etcd that exits.
    const bin = fs.mkdtempSync(path.join(labs.root, 'bin-'));
    const calls = path.join(bin, 'calls');
    fs.writeFileSync(path.join(bin, 'curl'), `#!/bin/sh\necho "$@" >> ${calls}\nexit 7\n`, { mode: 0o755 });
    const env = { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` };
    const name = labName('etcd');
    await labs.ok(['up', '-q', '--name', name, example('overlay.yml')], { env });
    expect(fs.existsSync(calls)).toBe(false);
    // etcd runs Go code on one processor (GOMAXPROCS=1 in its environment).
    const etcdPid = (JSON.parse(fs.readFileSync(path.join(labs.root, name, 'state.json'), 'utf8')) as { etcd: { pid: number } }).etcd.pid;
    expect(fs.readFileSync(`/proc/${etcdPid}/environ`, 'utf8').split('\0')).toContain('GOMAXPROCS=1');
    expect(await pingsAcross(`${name}-a1`, '198.19.100.21')).toContain('1 received');
    await labs.ok(['down', name]);
    fs.writeFileSync(path.join(bin, 'etcd'), '#!/bin/sh\necho "etcd stand-in: cannot start" >&2\nexit 3\n', { mode: 0o755 });
    const started = Date.now();
    const failed = await labs.lab(['up', '-q', '--name', name, example('overlay.yml')], { env });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('etcd exited (3):\netcd stand-in: cannot start');
    // At once, not after the daemons' 30 s wait for etcd.
    expect(Date.now() - started).toBeLessThan(15_000);
    await labs.ok(['down', name]);
    expect(await leftovers(name)).toEqual(clean);
  });

  it('overlay example across two hosts: etcd on the underlay, the overlay reaches across, the bridges stay on their hosts', async () => {
    const name = labName('ovl');
    await labs.ok(['up', '--name', name, example('overlay.yml')]);
    const checked = await labs.lab(['check', name]);
    expect(checked.stdout).toContain('3/3 expectations met, 0 failure(s)');
    expect(checked.code).toBe(0);
    // Independently: a1 pings b1's overlay address across the two simulated hosts.
    expect(await check(['ip', 'netns', 'exec', `${name}-a1`, 'ping', '-c', '1', '-W', '2', '198.19.100.21'])).toContain('1 received');
    await labs.ok(['down', name]);
    expect(await leftovers(name)).toEqual(clean);
  });

  it('two simulated hosts without an overlay: a daemon each in its own namespace, joined by the underlay; bridge networks stay on their host', async () => {
    const name = labName('mh');
    const dir = fs.mkdtempSync(path.join(labs.root, '..', 'cnmkit-lab-file-'));
    const file = path.join(dir, 'lab.yml');
    fs.writeFileSync(file, [`name: ${name}`, 'underlay: 198.18.77.0/24', 'hosts: {h1: {}, h2: {}}', 'networks:',
      '  lan1: {host: h1, subnet: 198.19.1.0/24}', '  lan2: {host: h2, subnet: 198.19.2.0/24}', 'nodes:',
      '  a1: {host: h1, networks: [lan1]}', '  a2: {host: h1, networks: [lan1]}', '  b1: {host: h2, networks: [lan2]}',
      'expect:', '  - {from: a1, to: a2}', '  - {from: a1, to: b1, reach: false}', ''].join('\n'));
    try {
      await labs.ok(['up', file]);
      const inspect = JSON.parse(await labs.ok(['inspect', name, '--format', 'json'])) as { hosts: Array<{ name: string; namespace: string; pid: number; running: boolean; underlayAddress: string }> };
      expect(inspect.hosts.map((h) => [h.name, h.namespace, h.running, h.underlayAddress])).toEqual([['h1', `${name}-h1`, true, '198.18.77.1/24'], ['h2', `${name}-h2`, true, '198.18.77.2/24']]);
      // Each daemon runs in its host's namespace (independently: /proc), and the hosts reach each other over the underlay.
      for (const h of inspect.hosts) expect(fs.readlinkSync(`/proc/${h.pid}/ns/net`)).toBe(`net:[${fs.statSync(`/run/netns/${h.namespace}`).ino}]`);
      expect(await check(['ip', 'netns', 'exec', `${name}-h1`, 'ping', '-c', '1', '-W', '2', '198.18.77.2'])).toContain('1 received');
      // lan1's bridge is in h1's namespace only; a1's interface hangs off it.
      expect(await check(['ip', '-n', `${name}-h1`, '-br', 'addr'])).toContain('198.19.1.1/24');
      expect(await check(['ip', '-n', `${name}-h2`, '-br', 'addr'])).not.toContain('198.19.1.1/24');
      const checked = await labs.lab(['check', name]);
      expect(checked.stdout).toContain('2/2 expectations met, 0 failure(s)');
      expect(checked.code).toBe(0);
      await labs.ok(['down', name]);
      for (const h of inspect.hosts) expect(pidAlive(h.pid)).toBe(false);
      expect(await leftovers(name)).toEqual(clean);
      expect(await namespacesWith(`${name}-`)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('down after SIGKILL of up halfway removes everything, daemons included', async () => {
    const name = labName('kill');
    const child = spawn('nsenter', [`--net=${machine.path}`, '--', process.execPath, CLI, 'lab', 'up', '-q', '--name', name, example('triangle.yml')], {
      env: { ...process.env, CNMKIT_LAB_DIR: labs.root }, stdio: 'ignore',
    });
    const deadline = Date.now() + 60_000;
    while ((await namespacesWith(`${name}-r`)).length === 0 && Date.now() < deadline) await sleep(20);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const pids = Object.values(labs.state(name).daemons).map((d) => d.pid);
    expect(pids.length).toBe(1);
    await labs.ok(['down', name]);
    for (const p of pids) expect(pidAlive(p)).toBe(false);
    expect(await leftovers(name)).toEqual(clean);
  });

  it('a host daemon killed: up brings it back and converges; down after another kill removes everything', async () => {
    const name = labName('dkill');
    await labs.ok(['up', '--name', name, example('triangle.yml')]);
    const first = labs.state(name).daemons.local!.pid;
    process.kill(first, 'SIGKILL');
    await labs.ok(['up', '--name', name, example('triangle.yml')]);
    const second = labs.state(name).daemons.local!.pid;
    expect(second).not.toBe(first);
    expect((await labs.lab(['check', name])).code).toBe(0);
    process.kill(second, 'SIGKILL');
    await labs.ok(['down', name]);
    expect(await leftovers(name)).toEqual(clean);
  });

  it('two labs from one file at once, apart', async () => {
    const [a, b] = [labName('two'), labName('two')];
    await Promise.all([labs.ok(['up', '-q', '--name', a, example('triangle.yml')]), labs.ok(['up', '-q', '--name', b, example('triangle.yml')])]);
    const ls = JSON.parse(await labs.ok(['ls', '--format', 'json'])) as Array<{ name: string; daemonsRunning: number }>;
    expect(ls.map((l) => [l.name, l.daemonsRunning]).sort()).toEqual([[a, 1], [b, 1]].sort());
    const [ca, cb] = await Promise.all([labs.lab(['check', a]), labs.lab(['check', b])]);
    expect([ca.code, cb.code]).toEqual([0, 0]);
    await labs.ok(['down', a]);
    expect(await namespacesWith(`${b}-`)).toHaveLength(7);
    await labs.ok(['down', b]);
    expect(await leftovers(a)).toEqual(clean);
    expect(await leftovers(b)).toEqual(clean);
  });

  it('a changed file: nodes and links added and removed in place, a node\'s address changed in place; a changed subnet refused by name', async () => {
    const name = labName('chg');
    const dir = fs.mkdtempSync(path.join(labs.root, '..', 'cnmkit-lab-file-'));
    const file = path.join(dir, 'lab.yml');
    const write = (nodes: string, subnet = '198.19.5.0/24') => fs.writeFileSync(file, `name: ${name}\nnetworks:\n  lan: {subnet: ${subnet}}\nnodes:\n${nodes}`);
    try {
      write('  a: {networks: [lan]}\n  b: {networks: [lan]}\n');
      await labs.ok(['up', file]);
      write('  a: {networks: [lan]}\n  c: {networks: [lan]}\nlinks:\n  - endpoints: ["a:p0", "c:p0"]\n    addresses: [198.19.6.1/30, 198.19.6.2/30]\n');
      await labs.ok(['up', file]);
      expect(await namespacesWith(`${name}-`)).toEqual([`${name}-a`, `${name}-c`, `${name}-local`]);
      expect(etcNetnsWith(`${name}-`).sort()).toEqual([`${name}-a`, `${name}-c`]);
      expect(await check(['ip', 'netns', 'exec', `${name}-a`, 'ping', '-c', '1', '-W', '2', '198.19.6.2'])).toContain('1 received');
      // A node's fixed address changed: its connection is made again with it (not left disconnected), and its route applies.
      write('  a: {networks: [lan]}\n  c: {networks: [{lan: {ip: 198.19.5.77}}], routes: [{dst: 198.19.8.0/24, via: 198.19.5.1}]}\n');
      await labs.ok(['up', file]);
      const addrs = JSON.parse(await check(['ip', '-n', `${name}-c`, '-j', 'addr', 'show', 'eth0'])) as { addr_info: { family: string; local: string }[] }[];
      expect(addrs[0]!.addr_info.filter((a) => a.family === 'inet').map((a) => a.local)).toEqual(['198.19.5.77']);
      expect(await check(['ip', '-n', `${name}-c`, 'route', 'show', '198.19.8.0/24'])).toContain('via 198.19.5.1');
      expect(await check(['ip', 'netns', 'exec', `${name}-a`, 'ping', '-c', '1', '-W', '2', '198.19.5.77'])).toContain('1 received');
      write('  a: {networks: [lan]}\n  c: {networks: [lan]}\n', '198.19.7.0/24');
      const refused = await labs.lab(['up', file]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('network lan: its definition changed');
      await labs.ok(['down', name]);
      expect(await leftovers(name)).toEqual(clean);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a 50-node star: every one of the 2450 pairs answers, beyond the kernel\'s shared neighbour-table cap, with no host-wide setting changed', async () => {
    const name = labName('star');
    const dir = fs.mkdtempSync(path.join(labs.root, '..', 'cnmkit-lab-file-'));
    const file = path.join(dir, 'star.yml');
    const nodes = Array.from({ length: 50 }, (_, i) => `  n${i + 1}: {networks: [lan]}`).join('\n');
    fs.writeFileSync(file, `name: ${name}\nnetworks:\n  lan: {subnet: 198.19.0.0/24}\nnodes:\n${nodes}\n`);
    const thresh = fs.readFileSync('/proc/sys/net/ipv4/neigh/default/gc_thresh3', 'utf8');
    try {
      await labs.ok(['up', '-q', file]);
      const r = JSON.parse(await labs.ok(['check', '--format', 'json', name])) as { pairs: Array<{ ok: boolean }>; failures: string[] };
      expect(r.failures).toEqual([]);
      expect(r.pairs.filter((p) => p.ok)).toHaveLength(2450);
      const perm = JSON.parse(await check(['ip', '-n', `${name}-n1`, '-j', 'neigh', 'show', 'nud', 'permanent'])) as unknown[];
      expect(perm).toHaveLength(49);
      expect(fs.readFileSync('/proc/sys/net/ipv4/neigh/default/gc_thresh3', 'utf8')).toBe(thresh);
      await labs.ok(['down', name]);
      expect(await leftovers(name)).toEqual(clean);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a delay on a link needs netem: refused in the file (line and field) naming sch_netem where the kernel lacks it, before anything is made', async (ctx) => {
    const netem = fs.existsSync('/sys/module/sch_netem') || (await run(['modprobe', '-n', 'sch_netem'])).code === 0;
    ctx.skip(netem, 'this kernel has netem (sch_netem): the refusal cannot happen here')
    const name = labName('netem');
    const dir = fs.mkdtempSync(path.join(labs.root, '..', 'cnmkit-lab-file-'));
    const file = path.join(dir, 'lab.yml');
    fs.writeFileSync(file, `name: ${name}\nnodes:\n  a: {}\n  b: {}\nlinks:\n  - endpoints: ["a:p0", "b:p0"]\n    delay: 10ms\n`);
    try {
      const r = await labs.lab(['up', file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/lab\.yml:7\S*: .*delay.*: delay, jitter and loss need the netem qdisc \(kernel module sch_netem\)/);
      expect(await namespacesWith(`${name}-`)).toEqual([]);
      expect((await labs.ok(['down', name])).trim()).toBe(`lab ${name}: not up (nothing to remove)`);
      expect(await leftovers(name)).toEqual(clean);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
