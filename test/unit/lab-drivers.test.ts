// A lab file's network drivers are checked when it is read, before `lab up` starts anything
// (issue 12): the driver's own parse step (unknown options, values it refuses), a macvlan parent
// the simulated host has, and for `up` an etcd it can start for an overlay. Each problem names
// the file, line and field. The parse functions are the daemon's drivers' own.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LabFileError } from '../../src/errors.js';
import { topologyOf } from '../../src/lab/topology.js';
import { parseSource } from '../../src/lab/source.js';
import { NETWORK_PARSERS } from '../../src/daemon/network-parse.js';
import { createBridgeDriver } from '../../drivers/bridge/index.js';
import { createHostDriver } from '../../drivers/host/index.js';
import { createMacvlanDriver } from '../../drivers/macvlan/index.js';
import { createNullDriver } from '../../drivers/null/index.js';
import { createOverlayDriver } from '../../drivers/overlay/index.js';

function problems(text: string, opts: { up?: boolean } = {}): string[] {
  try {
    topologyOf(parseSource('lab.yml', text), opts);
  } catch (err) {
    if (err instanceof LabFileError) return err.problems.map((p) => `${p.file}:${p.line} ${p.field}: ${p.reason}`);
    throw err;
  }
  return [];
}

const lab = (...lines: string[]): string => ['name: drv', ...lines, ''].join('\n');

describe('lab network drivers, checked when the file is read', () => {
  const savedPath = process.env.PATH;
  afterEach(() => {
    process.env.PATH = savedPath;
  });

  it('refuses an unknown driver and options the driver refuses, naming line and field', () => {
    expect(problems(lab('networks:', '  a: {driver: vxlan}'))).toEqual(['lab.yml:3 networks.a.driver: must be one of "bridge", "overlay", "macvlan", "null"']);
    expect(problems(lab(
      'networks:',
      '  z: {driver: bridge}',
      '  b: {driver: bridge, options: {colour: red}}',                     // 4
      '  c: {driver: macvlan, options: {macvlan_mode: loud}}',             // 5
      '  d: {driver: "null", options: {x: "1"}}',                          // 6
      '  e: {driver: bridge, options: {com.docker.network.bridge.name: "no/slash"}}', // 7
    ))).toEqual([
      expect.stringMatching(/^lab\.yml:4 networks\.b\.options\.colour: bridge driver: unknown bridge option \(known: .*\)$/),
      'lab.yml:5 networks.c.options.macvlan_mode: macvlan driver: requested macvlan mode "loud" is not valid (bridge, private, vepa, passthru; \'bridge\' is the default)',
      'lab.yml:6 networks.d.options.x: null driver: the null driver takes no options',
      expect.stringMatching(/^lab\.yml:7 networks\.e\.options\.com\.docker\.network\.bridge\.name: bridge driver: /),
    ]);
  });

  it('refuses an overlay option the overlay driver refuses', () => {
    expect(problems(lab('networks:', '  m: {driver: overlay, options: {vxlanid_list: "abc"}}'))).toEqual([
      expect.stringMatching(/^lab\.yml:3 networks\.m\.options\.vxlanid_list: overlay driver: /),
    ]);
  });

  it('refuses a macvlan parent the simulated host does not have; takes eth0 (the underlay leg) where the lab has one, and no parent anywhere', () => {
    expect(problems(lab('networks:', '  mv: {driver: macvlan, subnet: 198.19.1.0/24, options: {parent: eth0}}'))).toEqual([
      'lab.yml:3 networks.mv.options.parent: the lab\'s host has no interface "eth0": this lab\'s hosts have no interface but lo (eth0, the underlay leg, exists with several hosts or an overlay); leave parent out and the driver makes a bridge of its own',
    ]);
    expect(problems(lab('hosts: {h1: {}, h2: {}}', 'networks:', '  mv: {driver: macvlan, host: h1, options: {parent: eth9}}'))).toEqual([
      'lab.yml:4 networks.mv.options.parent: host h1 has no interface "eth9": a lab host has eth0 (its underlay leg); leave parent out and the driver makes a bridge of its own',
    ]);
    expect(problems(lab('hosts: {h1: {}, h2: {}}', 'networks:', '  mv: {driver: macvlan, host: h1, options: {parent: eth0}}'))).toEqual([]);
    expect(problems(lab('networks:', '  mv: {driver: macvlan, subnet: 198.19.1.0/24}'))).toEqual([]);
  });

  it('for up, refuses an overlay when there is no etcd to start and no cluster-store; graph and other readers do not ask', () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-nopath-'));
    try {
      process.env.PATH = empty;
      const file = lab('networks:', '  mesh: {driver: overlay, subnet: 198.19.100.0/24}');
      expect(problems(file, { up: true })).toEqual([
        'lab.yml:3 networks.mesh.driver: an overlay network needs a cluster store: the lab starts etcd for it, and there is no etcd in PATH (Debian: etcd-server); install it, or give cluster-store: etcd://ADDRESS:PORT',
      ]);
      expect(problems(file)).toEqual([]);
      expect(problems(`cluster-store: etcd://198.18.0.1:2379\n${file}`, { up: true })).toEqual([]);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
    process.env.PATH = savedPath;
    if (!fs.existsSync('/usr/bin/etcd')) return;
    expect(problems(lab('networks:', '  mesh: {driver: overlay, subnet: 198.19.100.0/24}'), { up: true })).toEqual([]);
  });

  it('runs the very parse steps the daemon\'s drivers run, for every driver the daemon registers', () => {
    const logger = { child: () => logger };
    const ctx = { logger } as never;
    const drivers = [createBridgeDriver(ctx, { userlandProxy: false }), createHostDriver(ctx), createMacvlanDriver(ctx), createNullDriver(ctx), createOverlayDriver(ctx)];
    expect(Object.keys(NETWORK_PARSERS).sort()).toEqual(drivers.map((d) => d.name).sort());
    const inputs: Array<{ name: string; options: Record<string, string>; internal: boolean; enableIPv6: boolean }> = [
      { name: 'n', options: {}, internal: false, enableIPv6: false },
      { name: 'n', options: { 'com.docker.network.driver.mtu': '1400' }, internal: true, enableIPv6: false },
      { name: 'n', options: { bogus: 'x' }, internal: false, enableIPv6: true },
    ];
    const outcome = (f: () => unknown): unknown => {
      try {
        return f();
      } catch (err) {
        return `error: ${(err as Error).message}`;
      }
    };
    for (const d of drivers) for (const i of inputs) expect(outcome(() => NETWORK_PARSERS[d.name]!(i)), d.name).toEqual(outcome(() => d.parse(i)));
  });
});
