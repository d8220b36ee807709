// cnmkit lab, what is not the lab's stays (issue 12, from a review): a host: end whose name the
// machine namespace has already, and a namespace another lab or the user holds, are refused before
// anything is made, and `down` then touches neither; `lo` is refused in the file. And a lab changed
// in place: a link's rate changes without making the link again (the routes exec lines added
// through it stay), a link deleted behind the lab's back is reported by `check` (which still runs)
// and made again by `up`, so is a node whose namespace was deleted by hand (which `check` names,
// checking the rest), an exec line that leaves a server in the background does not hold `up`,
// and an up and a down of one lab never interleave. Each lab runs from a throwaway namespace
// standing for the machine; checks with iproute2, tc and real packets.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { check, run } from '../helpers/exec.js';
import { LabRunner, labName, namespacesWith, pidAlive } from '../helpers/lab.js';

let machine: TestNs;
let labs: LabRunner;
let dir: string;

/** Writes a lab file named f in the test's folder; returns its path. */
function file(f: string, text: string): string {
  const p = path.join(dir, f);
  fs.writeFileSync(p, text);
  return p;
}

/** Waits until the file exists (at most 10 s). */
async function waitForFile(p: string): Promise<void> {
  for (let i = 0; i < 200 && !fs.existsSync(p); i++) await new Promise((r) => setTimeout(r, 50));
  if (!fs.existsSync(p)) throw new Error(`${p} did not appear`);
}

describeRoot('cnmkit lab: what is not the lab\'s, and changes in place', () => {
  beforeEach(async () => {
    machine = await makeNs('machine');
    labs = new LabRunner(machine);
    dir = fs.mkdtempSync(path.join(labs.root, '..', 'cnmkit-lab-file-'));
  });
  afterEach(async () => {
    await labs.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a host: end that exists already is refused before anything is made; down leaves it and its address', async () => {
    const name = labName('hst');
    await check(['ip', '-n', machine.name, 'link', 'add', 'keepme', 'type', 'veth', 'peer', 'name', 'keepme2']);
    await check(['ip', '-n', machine.name, 'addr', 'add', '198.19.99.1/24', 'dev', 'keepme']);
    const f = file('host.yml', `name: ${name}\nnodes:\n  n1: {}\nlinks:\n  - endpoints: ["n1:eth1", "host:keepme"]\n`);
    const r = await labs.lab(['up', f]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('host:keepme: this namespace has an interface of that name already');
    expect(await namespacesWith(`${name}-`)).toEqual([]);
    expect((await labs.ok(['down', name])).trim()).toBe(`lab ${name}: not up (nothing to remove)`);
    expect(await check(['ip', '-n', machine.name, '-br', 'addr', 'show', 'keepme'])).toContain('198.19.99.1/24');
    expect(await check(['ip', '-n', machine.name, '-br', 'link', 'show', 'keepme2'])).toContain('keepme2');
  });

  it('host:lo and a node end named lo are refused in the file, naming the line', async () => {
    const name = labName('lo');
    const f = file('lo.yml', `name: ${name}\nnodes:\n  n1: {}\n  n2: {}\nlinks:\n  - endpoints: ["n1:eth1", "host:lo"]\n  - endpoints: ["n1:lo", "n2:eth1"]\n`);
    const r = await labs.lab(['up', f]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/lo\.yml:6\S*: .*lo is the loopback interface every namespace has/);
    expect(r.stderr).toMatch(/lo\.yml:7\S*: .*lo is the loopback interface every namespace has/);
    expect(await namespacesWith(`${name}-`)).toEqual([]);
    expect(await check(['ip', '-n', machine.name, '-br', 'link', 'show', 'lo'])).toMatch(/^lo\s/);
  });

  it('a namespace another lab holds (names are LAB-NODE) or the user made is refused; down of the refused lab leaves them', async () => {
    const a = labName('ns');
    const b = `${a.slice(0, 14)}-n`;
    await labs.ok(['up', file('a.yml', `name: ${a}\nnetworks:\n  lan: {subnet: 198.19.5.0/24}\nnodes:\n  n-a: {networks: [lan]}\n  n-b: {networks: [lan]}\n`)]);
    const theirs = `${b}-a`;
    expect(await namespacesWith(theirs)).toEqual([theirs]);
    const r = await labs.lab(['up', file('b.yml', `name: ${b}\nnodes:\n  a: {}\n`)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`namespace ${theirs} exists and is not this lab's`);
    expect((await labs.ok(['down', b])).trim()).toBe(`lab ${b}: not up (nothing to remove)`);
    const checked = await labs.lab(['check', a]);
    expect(checked.stdout).toContain('2/2 pairs answered');
    // A namespace made by hand, with a process in it, the same.
    const c = labName('usr');
    await check(['ip', 'netns', 'add', `${c}-x`]);
    try {
      const sleeper = await run(['ip', 'netns', 'exec', `${c}-x`, 'sh', '-c', 'sleep 30 >/dev/null 2>&1 & echo $!']);
      const refused = await labs.lab(['up', file('c.yml', `name: ${c}\nnodes:\n  x: {}\n`)]);
      expect(refused.code).not.toBe(0);
      await labs.ok(['down', c]);
      expect(await namespacesWith(`${c}-x`)).toEqual([`${c}-x`]);
      expect(fs.existsSync(`/proc/${sleeper.stdout.trim()}`)).toBe(true);
      process.kill(Number(sleeper.stdout.trim()), 'SIGKILL');
    } finally {
      await run(['ip', 'netns', 'del', `${c}-x`]);
    }
  });

  it('a link\'s rate changed: shaped again in place, its veth and the routes exec added through it stay; a deleted link is made again', async () => {
    const name = labName('rate');
    const write = (shaping: string) => file('rate.yml', `name: ${name}\nnodes:\n  a:\n    exec: ["ip route add 198.19.99.0/24 via 198.19.6.2"]\n  b: {}\nlinks:\n  - endpoints: ["a:p0", "b:p0"]\n    addresses: [198.19.6.1/30, 198.19.6.2/30]\n${shaping}`);
    await labs.ok(['up', write('    rate: 100mbit\n')]);
    const index = async (): Promise<number> => (JSON.parse(await check(['ip', '-n', `${name}-a`, '-j', 'link', 'show', 'p0'])) as { ifindex: number }[])[0]!.ifindex;
    const before = await index();
    expect(await check(['tc', '-n', `${name}-a`, 'qdisc', 'show', 'dev', 'p0'])).toMatch(/^qdisc tbf \S+ root .*rate 100Mbit/);
    await labs.ok(['up', write('    rate: 50mbit\n')]);
    expect(await check(['tc', '-n', `${name}-a`, 'qdisc', 'show', 'dev', 'p0'])).toMatch(/^qdisc tbf \S+ root .*rate 50Mbit/);
    expect(await check(['tc', '-n', `${name}-b`, 'qdisc', 'show', 'dev', 'p0'])).toMatch(/^qdisc tbf \S+ root .*rate 50Mbit/);
    expect(await index()).toBe(before);
    expect(await check(['ip', '-n', `${name}-a`, 'route', 'show', '198.19.99.0/24'])).toContain('via 198.19.6.2 dev p0');
    await labs.ok(['up', write('')]);
    expect(await check(['tc', '-n', `${name}-a`, 'qdisc', 'show', 'dev', 'p0'])).not.toContain('tbf');
    expect(await index()).toBe(before);
    // Deleted by hand: `up` makes it again, and packets cross it.
    await check(['ip', '-n', `${name}-a`, 'link', 'del', 'p0']);
    // check still runs its matrix, and names the node it could not set up.
    const broken = await labs.lab(['check', name]);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/node a: its neighbour entries could not be set: .*p0/);
    expect(broken.stdout).toMatch(/0\/2 pairs answered/);
    await labs.ok(['up', write('')]);
    expect(await check(['ip', 'netns', 'exec', `${name}-a`, 'ping', '-c', '1', '-W', '2', '198.19.6.2'])).toContain('1 received');
    await labs.ok(['down', name]);
    expect(await namespacesWith(`${name}-`)).toEqual([]);
  });

  it('a node whose namespace was deleted by hand: check names it, says what makes it again, and checks the rest; up makes it again, with its network and its link, and packets cross both', async () => {
    const name = labName('gone');
    const f = file('gone.yml', `name: ${name}\nnetworks:\n  lan: {subnet: 198.19.7.0/24}\nnodes:\n  a: {networks: [{lan: {ip: 198.19.7.10}}]}\n  b: {networks: [{lan: {ip: 198.19.7.20}}], exec: ["ip addr add 198.19.250.1/32 dev lo"]}\n  c: {networks: [{lan: {ip: 198.19.7.30}}]}\nlinks:\n  - endpoints: ["a:p0", "b:p0"]\n    addresses: [198.19.6.1/30, 198.19.6.2/30]\nexpect:\n  - {from: a, to: c, reach: true}\n  - {from: a, to: b, reach: true}\n`);
    await labs.ok(['up', f]);
    await check(['ip', 'netns', 'del', `${name}-b`]);
    const says = `node b: its namespace ${name}-b is gone (deleted by hand?): no pair or expectation from or to it is tried; \`cnmkit lab up ${f}\` makes it again`;
    const text = await labs.lab(['check', name]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain(says);
    expect(text.stdout).toContain('MISS a → b reach true (not tried: node b\'s namespace is gone)');
    expect(text.stdout).toMatch(/lab \S+ check: 2\/2 pairs answered, 1\/2 expectations met, 2 failure\(s\)/);
    const json = await labs.lab(['check', '--format', 'json', name]);
    expect(json.code).toBe(1);
    const r = JSON.parse(json.stdout) as { gone: string[]; pairs: { from: string; to: string; ok: boolean }[]; expect: { to: string; ok: boolean }[]; failures: string[] };
    expect(r.gone).toEqual(['b']);
    expect(r.pairs.map((x) => `${x.from}>${x.to} ${x.ok}`).sort()).toEqual(['a>c true', 'c>a true']);
    expect(r.expect.map((e) => `${e.to} ${e.ok}`)).toEqual(['c true', 'b false']);
    expect(r.failures[0]).toContain(says);
    await labs.ok(['up', f]);
    expect(await check(['ip', '-n', `${name}-b`, '-br', 'addr', 'show', 'p0'])).toContain('198.19.6.2/30');
    // Its exec lines ran again in the new namespace (they run once per node made).
    expect(await check(['ip', '-n', `${name}-b`, '-br', 'addr', 'show', 'lo'])).toContain('198.19.250.1/32');
    expect(await check(['ip', 'netns', 'exec', `${name}-a`, 'ping', '-c', '1', '-W', '2', '198.19.7.20'])).toContain('1 received');
    expect(await check(['ip', 'netns', 'exec', `${name}-a`, 'ping', '-c', '1', '-W', '2', '198.19.6.2'])).toContain('1 received');
    expect((await labs.lab(['check', name])).code).toBe(0);
    await labs.ok(['down', name]);
    expect(await namespacesWith(`${name}-`)).toEqual([]);
  });

  it('a node whose namespace file is left but unmounted (no namespace any more): check calls it gone, and up makes it again', async () => {
    const name = labName('unmnt');
    const f = file('unmnt.yml', `name: ${name}\nnetworks:\n  lan: {subnet: 198.19.9.0/24}\nnodes:\n  a: {networks: [{lan: {ip: 198.19.9.10}}]}\n  b: {networks: [{lan: {ip: 198.19.9.20}}]}\n`);
    await labs.ok(['up', f]);
    await check(['umount', `/run/netns/${name}-b`]);
    expect(fs.existsSync(`/run/netns/${name}-b`)).toBe(true);
    const json = await labs.lab(['check', '--format', 'json', name]);
    expect(json.code).toBe(1);
    expect((JSON.parse(json.stdout) as { gone: string[] }).gone).toEqual(['b']);
    await labs.ok(['up', f]);
    expect(await check(['ip', 'netns', 'exec', `${name}-a`, 'ping', '-c', '1', '-W', '2', '198.19.9.20'])).toContain('1 received');
    expect((await labs.lab(['check', name])).code).toBe(0);
    await labs.ok(['down', name]);
    expect(await namespacesWith(`${name}-`)).toEqual([]);
  });

  it('an up and a down of one lab never interleave: the second is refused naming the first while it runs', async () => {
    const name = labName('lock');
    const f = file('lock.yml', `name: ${name}\nnodes:\n  a:\n    exec: ["sleep 3"]\n`);
    const up = labs.lab(['up', f]);
    await waitForFile(path.join(labs.root, `.${name}.lock`));
    const down = await labs.lab(['down', name]);
    expect(down.code).not.toBe(0);
    expect(down.stderr).toMatch(new RegExp(`lab ${name}: another cnmkit lab command \\(pid \\d+\\) is changing it`));
    expect((await up).code).toBe(0);
    expect(await namespacesWith(`${name}-`)).toEqual([`${name}-a`, `${name}-local`]);
    await labs.ok(['down', name]);
    expect(await namespacesWith(`${name}-`)).toEqual([]);
  });

  it('a containerlab file as it is: an underscore in the lab\'s name, uppercase node names; they reach each other by name', async () => {
    const name = labName('cl').replace('-', '_');
    const f = file('names.clab.yml', `name: ${name}\nmgmt:\n  network: mgmt\n  ipv4-subnet: 198.19.41.0/24\ntopology:\n  nodes:\n    PE1: {kind: linux}\n    pe2: {kind: linux}\n  links:\n    - endpoints: ["PE1:eth1", "pe2:eth1"]\n`);
    await labs.ok(['up', f]);
    expect(await namespacesWith(`${name}-`)).toEqual(expect.arrayContaining([`${name}-PE1`, `${name}-pe2`]));
    const byName = await labs.lab(['exec', name, 'PE1', '--', 'ping', '-c', '1', '-W', '2', 'pe2']);
    expect(byName.stdout).toContain('1 received');
    await labs.ok(['down', name]);
    expect(await namespacesWith(`${name}-`)).toEqual([]);
  });

  it('an exec line that leaves a process in the background: up goes on when the line ends, and down ends the process; lab exec has the node\'s env', async () => {
    const name = labName('bg');
    const started = Date.now();
    await labs.ok(['up', file('bg.yml', `name: ${name}\nnodes:\n  a:\n    env: {GREETING: hello}\n    exec: ["sleep 60 &", "echo started"]\n`)]);
    // The line's shell ends at once; its sleep holds the output pipes for 60 s.
    expect(Date.now() - started).toBeLessThan(30_000);
    // lab exec gives the command the node's env, as its exec lines have it.
    expect((await labs.ok(['exec', name, 'a', '--', 'sh', '-c', 'echo $GREETING'])).trim()).toBe('hello');
    const pids = (await run(['ip', 'netns', 'pids', `${name}-a`])).stdout.trim().split('\n').filter(Boolean);
    expect(pids.length).toBeGreaterThan(0);
    await labs.ok(['down', name]);
    for (const pid of pids) expect(pidAlive(Number(pid))).toBe(false);
  });
});
