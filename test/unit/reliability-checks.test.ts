// The reliability campaigns' own checks (test/helpers/reliability) must be able to fail: each
// invariant is shown to catch the fault it names on a hand-made state, the error-shape check to
// refuse other shapes, the response parser to read what node sends, and a seed to replay.
import { describe, expect, it } from 'vitest';
import { parseResponses } from '../helpers/reliability/http.js';
import { checkInvariants, countByKind } from '../helpers/reliability/invariants.js';
import { shapeProblem } from '../helpers/reliability/fuzz.js';
import { prng } from '../helpers/reliability/kill.js';
import type { IpLink, State } from '../helpers/reliability/state.js';

const NET = 'n'.repeat(64);
const EP = 'e'.repeat(64);
const SB = 's'.repeat(64);
const link = (ifname: string, extra: Partial<IpLink> = {}): IpLink => ({ ifname, ...extra });
const addr = (a: string, len = 24) => ({ family: 'inet', local: a, prefixlen: len });

/** A sound state: one network with one endpoint in a named sandbox, its rule and its addresses. */
function sound(): State {
  return {
    store: {
      networks: [{ id: NET, name: 'web', driver: 'bridge', state: 'ready', internal: false, config: { bridgeName: 'br-web' }, ipv4: [{ poolId: 'p', subnet: '198.18.5.0/24', gateway: '198.18.5.1/24' }], ipv6: [] }],
      endpoints: [{ id: EP, networkId: NET, sandboxId: SB, name: 'web-a', ifname: 'eth0', ipv4: '198.18.5.2/24', ports: [], driverData: { hostIfname: 'veth1', containerIfname: 'tmp1' }, state: 'ready' }],
      sandboxes: [{ id: SB, name: 'a', kind: 'named', netnsPath: '/ns/a', state: 'ready' }],
      pools: [{ id: 'p', subnet: '198.18.5.0/24', owner: `network:${NET}` }],
      addresses: [{ subnet: '198.18.5.0/24', address: '198.18.5.1', poolId: 'p', kind: 'gateway', owner: `network:${NET}` }, { subnet: '198.18.5.0/24', address: '198.18.5.2', poolId: 'p', kind: 'dynamic', owner: `endpoint:${EP}` }],
      links: [],
    },
    kernel: {
      host: { links: [link('lo'), link('br-web', { linkinfo: { info_kind: 'bridge' }, addr_info: [addr('198.18.5.1')] }), link('veth1', { master: 'br-web', linkinfo: { info_kind: 'veth' } })], routes: [] },
      namespaces: { '/ns/a': { links: [link('lo'), link('eth0', { addr_info: [addr('198.18.5.2')] })], routes: [] } },
      named: ['a'],
      rules: [`nft cnmkit:${NET}`],
      listeners: [],
    },
  };
}

const check = (s: State) => countByKind(checkInvariants(s, { hostNs: '/ns/host', baselineLinks: ['lo'], firewall: true, netnsDir: '/ns' }));
const only = (kind: string, n = 1) => expect.objectContaining({ [kind]: n });

describe('the invariants of the reliability campaigns', () => {
  it('hold on a sound state', () => {
    expect(Object.values(check(sound())).every((n) => n === 0)).toBe(true);
  });
  it('catch a link no record owns, a namespace no sandbox owns, and a missing one', () => {
    const s = sound();
    s.kernel.host.links.push(link('vethdead', { linkinfo: { info_kind: 'veth' } }));
    s.kernel.named.push('ghost');
    expect(check(s)).toEqual(expect.objectContaining({ 'leaked-link': 1, 'leaked-namespace': 1 }));
    const t = sound();
    t.kernel.namespaces['/ns/a'] = { error: 'no such file' };
    expect(check(t)).toEqual(only('missing-namespace'));
  });
  it('catch a rule whose owner is gone and an address held by an endpoint that is gone', () => {
    const s = sound();
    s.kernel.rules.push(`iptables cnmkit:${'f'.repeat(64)}/tcp/198.18.5.9/80/8080`);
    s.store.addresses.push({ subnet: '198.18.5.0/24', address: '198.18.5.9', poolId: 'p', kind: 'dynamic', owner: `endpoint:${'f'.repeat(64)}` });
    expect(check(s)).toEqual(expect.objectContaining({ 'orphan-rule': 1, 'orphan-address': 1 }));
  });
  it('catch one address on two interfaces, and an interface that lacks its endpoint\'s address', () => {
    const s = sound();
    s.kernel.host.links.push(link('dummy0', { addr_info: [addr('198.18.5.2')] }));
    s.kernel.host.links.at(-1)!.ifname = 'lo2';
    expect(check(s)['duplicate-ip']).toBe(1);
    const t = sound();
    (t.kernel.namespaces['/ns/a'] as { links: IpLink[] }).links[1]!.addr_info = [];
    expect(check(t)).toEqual(only('disagree'));
  });
});

describe('the error shape of the fuzzed sockets', () => {
  const mgmt = { target: 'management' as const, label: 'POST /v1/networks', bytes: Buffer.alloc(0), halfClose: false };
  const plugin = { ...mgmt, target: 'ipam' as const, label: 'POST /IpamDriver.RequestPool' };
  it('accepts {error, code[, field]} on the management API and {"Err"} on plugin sockets', () => {
    expect(shapeProblem(mgmt, { status: 400, headers: {}, body: '{"error":"subnet: bad","code":"ERR_INVALID","field":"subnet"}' })).toBeUndefined();
    expect(shapeProblem(plugin, { status: 400, headers: {}, body: '{"Err":"PoolID: bad"}' })).toBeUndefined();
  });
  it('refuses fastify\'s own shape, an empty Err, and text', () => {
    expect(shapeProblem(mgmt, { status: 404, headers: {}, body: '{"message":"Route not found","error":"Not Found","statusCode":404}' })).toMatch(/not \{error, code/);
    expect(shapeProblem(plugin, { status: 400, headers: {}, body: '{"Err":""}' })).toMatch(/no "Err"/);
    expect(shapeProblem(mgmt, { status: 413, headers: {}, body: 'too large' })).toMatch(/not JSON/);
  });
});

describe('the campaigns\' plumbing', () => {
  it('parses two responses on one connection, by Content-Length', () => {
    const raw = 'HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n';
    expect(parseResponses(Buffer.from(raw)).map((r) => [r.status, r.body])).toEqual([[400, '{}'], [204, '']]);
  });
  it('replays a seed', () => {
    const a = prng(42);
    const b = prng(42);
    expect(Array.from({ length: 5 }, a)).toEqual(Array.from({ length: 5 }, b));
    expect(prng(43)()).not.toBe(prng(42)());
  });
});
