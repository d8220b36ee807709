// `cnmkit check` and `cnmkit network inspect --check` against a real daemon in a throwaway "host"
// namespace: clean right after create+connect (exit 0), then each kind of drift made with iproute2
// and nft behind the daemon's back — a gateway address, a sandbox's address, a firewall rule, the
// bridge itself — is reported by name in the table and in JSON, with exit 1. And `check --fix`
// on a bridge network: a deleted firewall rule and veths set down (both ends) repaired, checked
// with nft -j and ip -j; a deleted gateway address left and named as not repaired (exit 1); the
// named form with a name it cannot find among others still repairs and prints the others (exit 1).
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { TestDaemon } from '../helpers/daemon.js';
import { check } from '../helpers/exec.js';

interface Item { object: string; what: string; expected: string; found: string }
interface NetworkCheck { network: string; items: Item[]; repaired?: Item[] }

describeRoot('cnmkit check', () => {
  let host: TestNs;
  let daemon: TestDaemon;

  beforeEach(async () => {
    host = await makeNs('chk');
    daemon = new TestDaemon(host, ['--firewall-backend', 'nftables']);
    await daemon.start();
  });

  afterEach(async () => {
    await daemon.cleanup();
  });

  async function checkJson(args: string[]): Promise<{ code: number; checks: NetworkCheck[] }> {
    const r = await daemon.cmd([...args, '--format', 'json']);
    return { code: r.code, checks: JSON.parse(r.stdout) as NetworkCheck[] };
  }

  it('is clean after create and connect, and names each drift made behind its back (exit 1)', async () => {
    const made = await daemon.cmd(['network', 'create', '--subnet', '198.18.200.0/24', '-o', 'com.docker.network.bridge.name=ckbr0', 'ck']);
    expect(made.stderr).toBe('');
    const sb = await daemon.sandbox();
    expect((await daemon.cmd(['connect', 'ck', sb, '--ip', '198.18.200.10'])).code).toBe(0);

    const clean = await daemon.cmd(['check']);
    expect(clean).toMatchObject({ code: 0, stderr: '' });
    expect(clean.stdout).toMatch(/^no drift: \d+ networks checked \(.*ck.*\)$/m);
    expect((await daemon.cmd(['network', 'inspect', '--check', 'ck'])).code).toBe(0);

    await check(['ip', '-n', host.name, 'addr', 'del', '198.18.200.1/24', 'dev', 'ckbr0']);
    await check(['ip', '-n', sb, 'addr', 'flush', 'dev', 'eth0']);
    const table = await daemon.cmd(['network', 'inspect', '--check', 'ck']);
    expect(table.code).toBe(1);
    expect(table.stdout).toMatch(/^NETWORK\s+OBJECT\s+WHAT\s+EXPECTED\s+FOUND$/m);
    expect(table.stdout).toMatch(/^ck\s+network ck\s+address\s+198\.18\.200\.1\/24 on ckbr0\s+ckbr0 has (no address|fe80:\S+)$/m);
    const json = await checkJson(['network', 'inspect', '--check', 'ck']);
    expect(json.code).toBe(1);
    expect(json.checks).toHaveLength(1);
    const items = json.checks[0]!.items;
    expect(items).toContainEqual(expect.objectContaining({ object: 'network ck', what: 'address', expected: '198.18.200.1/24 on ckbr0' }));
    expect(items).toContainEqual(expect.objectContaining({ object: expect.stringMatching(new RegExp(`of sandbox ${sb}$`)), what: 'address', expected: '198.18.200.10/24 on eth0' }));
    expect(items).toContainEqual(expect.objectContaining({ what: 'route', expected: '198.18.200.0/24 dev eth0' }));

    // One of the network's rules deleted from cnmkit's nft table, by its handle.
    const id = JSON.parse((await daemon.cmd(['network', 'inspect', 'ck'])).stdout)[0].id as string;
    const listing = JSON.parse(await check(['ip', 'netns', 'exec', host.name, 'nft', '-j', '-a', 'list', 'table', 'inet', 'cnmkit'])) as { nftables: { rule?: { chain: string; handle: number; comment?: string } }[] };
    const rule = listing.nftables.map((e) => e.rule).find((r) => r?.comment === `cnmkit:${id}`);
    expect(rule).toBeDefined();
    await check(['ip', 'netns', 'exec', host.name, 'nft', 'delete', 'rule', 'inet', 'cnmkit', rule!.chain, 'handle', String(rule!.handle)]);
    const all = await checkJson(['check']);
    expect(all.code).toBe(1);
    const ck = all.checks.find((c) => c.network === 'ck')!;
    expect(ck.items).toContainEqual(expect.objectContaining({ object: 'network ck', what: 'firewall rules', expected: expect.stringMatching(new RegExp(`^(\\d+) nftables rules tagged cnmkit:${id}$`)) }));
    const fw = ck.items.find((i) => i.what === 'firewall rules')!;
    expect(Number(fw.found)).toBe(Number(fw.expected.split(' ')[0]) - 1);
    expect(all.checks.filter((c) => c.network !== 'ck').every((c) => c.items.length === 0)).toBe(true);

    await check(['ip', '-n', host.name, 'link', 'del', 'ckbr0']);
    const gone = await checkJson(['network', 'inspect', '--check', 'ck']);
    expect(gone.checks[0]!.items).toContainEqual({ object: 'network ck', what: 'device', expected: 'bridge ckbr0 in the host namespace', found: 'missing' });
    expect(gone.checks[0]!.items).toContainEqual(expect.objectContaining({ what: 'master', expected: expect.stringMatching(/a port of ckbr0$/) }));
    expect((await daemon.cmd(['network', 'inspect', '--check', 'nope'])).code).toBe(1);
  });

  it('check --fix repairs a deleted firewall rule and veths set down, and names what it left (a deleted address)', async () => {
    // Internal: no default route in the sandbox, which eth0's down would take along (not repaired).
    expect((await daemon.cmd(['network', 'create', '--internal', '--subnet', '198.18.201.0/24', '-o', 'com.docker.network.bridge.name=fxbr0', 'fx'])).code).toBe(0);
    const sb = await daemon.sandbox();
    expect((await daemon.cmd(['connect', 'fx', sb])).code).toBe(0);
    const id = JSON.parse((await daemon.cmd(['network', 'inspect', 'fx'])).stdout)[0].id as string;
    const port = (JSON.parse(await check(['ip', '-n', host.name, '-j', 'link', 'show', 'master', 'fxbr0'])) as { ifname: string }[])[0]!.ifname;
    const rules = async (): Promise<{ chain: string; handle: number }[]> =>
      (JSON.parse(await check(['ip', 'netns', 'exec', host.name, 'nft', '-j', '-a', 'list', 'table', 'inet', 'cnmkit'])) as { nftables: { rule?: { chain: string; handle: number; comment?: string } }[] })
        .nftables.flatMap((e) => (e.rule?.comment === `cnmkit:${id}` ? [e.rule] : []));
    const up = async (ns: string, dev: string): Promise<boolean> => (JSON.parse(await check(['ip', '-n', ns, '-j', 'link', 'show', dev])) as { flags: string[] }[])[0]!.flags.includes('UP');
    const before = (await rules()).length;
    const rule = (await rules())[0]!;
    await check(['ip', 'netns', 'exec', host.name, 'nft', 'delete', 'rule', 'inet', 'cnmkit', rule.chain, 'handle', String(rule.handle)]);
    await check(['ip', '-n', host.name, 'link', 'set', port, 'down']);
    await check(['ip', '-n', sb, 'link', 'set', 'eth0', 'down']);
    await check(['ip', '-n', host.name, 'addr', 'del', '198.18.201.1/24', 'dev', 'fxbr0']);
    expect((await rules()).length).toBe(before - 1);
    expect(await up(host.name, port)).toBe(false);

    const fixed = await daemon.cmd(['check', '--fix']);
    expect(fixed.code).toBe(1);
    expect(fixed.stdout).toMatch(/^repaired \d+ differences:$/m);
    expect(fixed.stdout).toMatch(new RegExp(`^fx +network fx +firewall rules +${before} nftables rules tagged cnmkit:${id} +${before - 1}$`, 'm'));
    expect(fixed.stdout).toMatch(new RegExp(`^fx +endpoint \\S+ of sandbox ${sb} +state +${port} up +${port} down$`, 'm'));
    expect(fixed.stdout).toMatch(new RegExp(`^fx +endpoint \\S+ of sandbox ${sb} +state +eth0 up +eth0 down$`, 'm'));
    expect(fixed.stdout).toMatch(/^not repaired, 1 difference left:$/m);
    expect(fixed.stdout).toMatch(/^fx +network fx +address +198\.18\.201\.1\/24 on fxbr0 +fxbr0 has/m);
    expect((await rules()).length).toBe(before);
    expect(await up(host.name, port)).toBe(true);
    expect(await up(sb, 'eth0')).toBe(true);

    await check(['ip', '-n', host.name, 'addr', 'add', '198.18.201.1/24', 'dev', 'fxbr0']);
    const json = await checkJson(['check', '--fix']);
    expect(json.code).toBe(0);
    expect(json.checks.find((c) => c.network === 'fx')).toMatchObject({ items: [], repaired: [] });

    // The same for the networks named: network inspect --check --fix (--fix alone is refused, changing nothing).
    await check(['ip', '-n', sb, 'link', 'set', 'eth0', 'down']);
    const alone = await daemon.cmd(['network', 'inspect', '--fix', 'fx']);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('--fix repairs what --check finds: give both');
    expect(await up(sb, 'eth0')).toBe(false);
    const named = await daemon.cmd(['network', 'inspect', '--check', '--fix', 'fx']);
    expect(named.code).toBe(0);
    // eth0's down took its connected route along: the kernel puts it back with eth0 up, and both count as repaired.
    expect(named.stdout).toMatch(/^repaired 2 differences:$/m);
    expect(named.stdout).toMatch(new RegExp(`^fx +endpoint \\S+ of sandbox ${sb} +state +eth0 up +eth0 down$`, 'm'));
    expect(named.stdout).toMatch(new RegExp(`^fx +endpoint \\S+ of sandbox ${sb} +route +198\\.18\\.201\\.0/24 dev eth0 +missing$`, 'm'));
    expect(named.stdout).toMatch(/^no drift: 1 network checked \(fx\)$/m);
    expect(await up(sb, 'eth0')).toBe(true);
    const again = await checkJson(['network', 'inspect', '--check', '--fix', 'fx']);
    expect(again.code).toBe(0);
    expect(again.checks).toMatchObject([{ network: 'fx', items: [], repaired: [] }]);
    expect((await daemon.cmd(['network', 'inspect', '--check', '--fix', 'nope'])).code).toBe(1);

    // A name it cannot find among others: an error for it, and what was repaired on the others still printed (as network inspect).
    await check(['ip', '-n', sb, 'link', 'set', 'eth0', 'down']);
    const mixed = await daemon.cmd(['network', 'inspect', '--check', '--fix', 'fx', 'nope']);
    expect(mixed.code).toBe(1);
    expect(mixed.stderr.trim()).toBe('Error: network "nope" not found');
    expect(mixed.stdout).toMatch(new RegExp(`^fx +endpoint \\S+ of sandbox ${sb} +state +eth0 up +eth0 down$`, 'm'));
    expect(mixed.stdout).toMatch(/^no drift: 1 network checked \(fx\)$/m);
    expect(await up(sb, 'eth0')).toBe(true);
    await check(['ip', '-n', sb, 'link', 'set', 'eth0', 'down']);
    const mixedJson = await checkJson(['network', 'inspect', '--check', '--fix', 'nope', 'fx']);
    expect(mixedJson.code).toBe(1);
    expect(mixedJson.checks).toMatchObject([{ network: 'fx', items: [], repaired: [expect.objectContaining({ what: 'state', expected: 'eth0 up', found: 'eth0 down' }), expect.objectContaining({ what: 'route' })] }]);
    const readOnly = await daemon.cmd(['network', 'inspect', '--check', 'nope', 'fx']);
    expect(readOnly).toMatchObject({ code: 1, stderr: 'Error: network "nope" not found\n' });
    expect(readOnly.stdout).toMatch(/^no drift: 1 network checked \(fx\)$/m);
  });
});
