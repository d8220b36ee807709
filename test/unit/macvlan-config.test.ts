// The macvlan driver's parse step: Docker's options into a typed config, bad input refused naming
// the field, nothing else looked at (the parent's existence is the plan's, checked in test/e2e).
import { describe, expect, it } from 'vitest';
import { ownBridgeNameFor, parseMacvlanConfig, vlanOf } from '../../drivers/macvlan/config.js';
import { macFor } from '../../drivers/macvlan/endpoint.js';

const parse = (options: Record<string, string>, more: { internal?: boolean; enableIPv6?: boolean } = {}) =>
  parseMacvlanConfig({ name: 'n', options, internal: more.internal ?? false, enableIPv6: more.enableIPv6 ?? false });

describe('macvlan parse', () => {
  it('defaults to bridge mode, no parent (cnmkit makes one), the parent\'s MTU', () => {
    expect(parse({})).toEqual({ mode: 'bridge', internal: false, enableIPv6: false });
    expect(parse({ parent: 'eth0', macvlan_mode: 'private', 'com.docker.network.driver.mtu': '1400' }, { internal: true, enableIPv6: true }))
      .toEqual({ parent: 'eth0', mode: 'private', mtu: 1400, internal: true, enableIPv6: true });
    for (const mode of ['bridge', 'private', 'vepa', 'passthru']) expect(parse({ macvlan_mode: mode }).mode).toBe(mode);
    expect(parse({ parent: '' }).parent).toBeUndefined();
  });

  it('refuses bad input naming the field', () => {
    expect(() => parse({ macvlan_mode: 'source' })).toThrow(/^macvlan_mode: requested macvlan mode "source" is not valid/);
    expect(() => parse({ parent: 'lo' })).toThrow(/^parent: the loopback interface is not a valid macvlan parent/);
    expect(() => parse({ parent: 'a-name-far-too-long' })).toThrow(/^parent:/);
    expect(() => parse({ 'com.docker.network.driver.mtu': '40' })).toThrow(/^com\.docker\.network\.driver\.mtu: expected an MTU between 68 and 65535/);
    expect(() => parse({ 'com.docker.network.bridge.name': 'x' })).toThrow(/^options\.com\.docker\.network\.bridge\.name: unknown macvlan option/);
  });

  it('reads NAME.ID as Docker does; names its own bridge mv- and 12 hex of the id; Docker\'s MAC from the IPv4 address', () => {
    expect(vlanOf('eth0.10')).toEqual({ base: 'eth0', id: 10 });
    expect(vlanOf('eth0')).toBeUndefined();
    expect(vlanOf('eth0.1.2')).toBeUndefined();
    expect(vlanOf('eth0.x')).toBeUndefined();
    expect(ownBridgeNameFor('0123456789abcdef0123')).toBe('mv-0123456789ab');
    expect(macFor('198.18.40.130/24')).toBe('02:42:c6:12:28:82');
    expect(macFor(undefined)).toMatch(/^02(:[0-9a-f]{2}){5}$/);
  });
});
