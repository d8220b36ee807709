// cnmkit lab and network drivers (issue 12): a file whose drivers or options would be refused
// fails before anything starts (no namespace, no daemon, no run directory), naming file, line and
// field; the macvlan example (a macvlan on each host's underlay leg, and one without a parent)
// goes up, passes check, and comes down leaving nothing. Independent checks with iproute2, /proc
// and real packets.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { check } from '../helpers/exec.js';
import { EXAMPLES, etcNetnsWith, LabRunner, labName, namespacesWith, netState } from '../helpers/lab.js';

let machine: TestNs;
let labs: LabRunner;
let before: string;

/** Processes whose command line names dir (a lab host's daemon names its run directory). */
function processesUsing(dir: string): number[] {
  return fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir);
    } catch {
      return false;
    }
  }).map(Number);
}

describeRoot('cnmkit lab: network drivers', () => {
  beforeEach(async () => {
    machine = await makeNs('machine');
    labs = new LabRunner(machine);
    before = await netState(machine);
  });
  afterEach(async () => {
    await labs.cleanup();
  });

  it('refuses options a driver refuses and a macvlan parent the host lacks before anything starts: no namespace, no daemon, no run directory', async () => {
    const name = labName('drv');
    const dir = fs.mkdtempSync(path.join(labs.root, '..', 'cnmkit-lab-file-'));
    const file = path.join(dir, 'lab.yml');
    fs.writeFileSync(file, [`name: ${name}`, 'hosts: {h1: {}, h2: {}}', 'networks:',
      '  lan: {host: h1, subnet: 198.19.1.0/24, options: {colour: red}}',
      '  mv: {driver: macvlan, host: h2, subnet: 198.19.2.0/24, options: {parent: eth7}}',
      'nodes:', '  a: {host: h1, networks: [lan]}', '  b: {host: h2, networks: [mv]}', ''].join('\n'));
    try {
      const r = await labs.lab(['up', file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${file}:4: networks.lan.options.colour: bridge driver: unknown bridge option`);
      expect(r.stderr).toContain(`${file}:5: networks.mv.options.parent: host h2 has no interface "eth7"`);
      expect(await namespacesWith(`${name}-`)).toEqual([]);
      expect(fs.existsSync(path.join(labs.root, name))).toBe(false);
      expect(processesUsing(labs.root)).toEqual([]);
      expect(await netState(machine)).toBe(before);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('macvlan example: nodes of two hosts share the underlay segment through macvlans on eth0; a parentless macvlan is an island', async () => {
    const name = labName('mv');
    await labs.ok(['up', '--name', name, path.join(EXAMPLES, 'macvlan.yml')]);
    const checked = await labs.lab(['check', name]);
    expect(checked.stdout).toContain('5/5 expectations met, 0 failure(s)');
    expect(checked.code).toBe(0);
    // Independently: a1's seg1 interface is a macvlan whose parent is h1's eth0 (the underlay leg),
    // and a1 reaches b1 on the other host with a real ping.
    const links = JSON.parse(await check(['ip', '-n', `${name}-a1`, '-d', '-j', 'link', 'show', 'eth0'])) as Array<{ linkinfo?: { info_kind?: string }; link_netnsid?: number; link?: string }>;
    expect(links[0]?.linkinfo?.info_kind).toBe('macvlan');
    const h1eth0 = JSON.parse(await check(['ip', '-n', `${name}-h1`, '-j', 'link', 'show', 'eth0'])) as Array<{ ifindex: number }>;
    const a1eth0 = JSON.parse(await check(['ip', '-n', `${name}-a1`, '-j', 'link', 'show', 'eth0'])) as Array<{ link_index?: number; link_netnsid?: number }>;
    expect(a1eth0[0]?.link_index).toBe(h1eth0[0]?.ifindex);
    expect(await check(['ip', 'netns', 'exec', `${name}-a1`, 'ping', '-c', '1', '-W', '2', '198.19.60.80'])).toContain('1 received');
    await labs.ok(['down', name]);
    expect({ namespaces: await namespacesWith(`${name}-`), etc: etcNetnsWith(`${name}-`), machineChanged: (await netState(machine)) !== before })
      .toEqual({ namespaces: [], etc: [], machineChanged: false });
    expect(processesUsing(path.join(labs.root, name))).toEqual([]);
  });
});
