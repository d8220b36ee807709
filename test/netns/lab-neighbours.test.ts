// Why `lab check` programs permanent neighbour entries: the kernel's ARP table is shared by every
// namespace and refuses new dynamic entries beyond gc_thresh3 (1024 here), but permanent entries
// are not counted against that cap. Shown on this kernel: more permanent entries than the cap in
// one namespace, and a dynamic resolution in another still works.
import fs from 'node:fs';
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { makeNs } from '../helpers/netns.js';
import { check } from '../helpers/exec.js';

describeRoot('neighbour table cap', () => {
  it('does not count permanent entries against gc_thresh3', async (ctx) => {
    const thresh3 = Number(fs.readFileSync('/proc/sys/net/ipv4/neigh/default/gc_thresh3', 'utf8'));
    ctx.skip(thresh3 > 8192, `gc_thresh3 is ${thresh3} on this machine: too many entries to show the cap in a test`);
    const a = await makeNs('neigh-a');
    const b = await makeNs('neigh-b');
    await check(['ip', 'link', 'add', 'v0', 'netns', a.name, 'type', 'veth', 'peer', 'name', 'v1', 'netns', b.name]);
    await a.sh(['ip', 'addr', 'add', '198.18.200.1/24', 'dev', 'v0']);
    await b.sh(['ip', 'addr', 'add', '198.18.200.2/24', 'dev', 'v1']);
    await a.sh(['ip', 'link', 'set', 'v0', 'up']);
    await b.sh(['ip', 'link', 'set', 'v1', 'up']);
    const count = thresh3 + 200;
    const lines = Array.from({ length: count }, (_, i) => {
      const ip = `198.19.${Math.floor(i / 250)}.${(i % 250) + 1}`;
      const mac = `02:00:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
      return `neigh add ${ip} lladdr ${mac} dev v0 nud permanent`;
    });
    await check(['ip', '-n', a.name, '-batch', '-'], { input: `${lines.join('\n')}\n`, timeoutMs: 60_000 });
    const perm = JSON.parse(await check(['ip', '-n', a.name, '-j', 'neigh', 'show', 'nud', 'permanent'])) as unknown[];
    expect(perm.length).toBe(count);
    // A dynamic entry is still created on both sides: the cap counts only entries the kernel may collect.
    const ping = await b.sh(['ping', '-c', '1', '-W', '2', '198.18.200.1']);
    expect(ping).toContain('1 received');
    const dyn = await b.sh(['ip', 'neigh', 'show', '198.18.200.1']);
    expect(dyn).toMatch(/lladdr [0-9a-f:]+ (REACHABLE|STALE|DELAY)/);
  });
});
