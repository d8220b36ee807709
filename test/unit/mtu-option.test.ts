// Docker's MTU option as every driver reads it (bridge, macvlan, overlay): an empty value refused
// naming the option, and an MTU below 1280 refused on a network with IPv6, saying why, at create
// (before the kernel would refuse the first address with a raw EINVAL).
import { describe, expect, it } from 'vitest';
import { parseBridgeConfig } from '../../drivers/bridge/config.js';
import { parseMacvlanConfig } from '../../drivers/macvlan/config.js';
import { mtuOption } from '../../src/contract/options.js';

const MTU = 'com.docker.network.driver.mtu';
const input = (mtu: string, enableIPv6: boolean) => ({ name: 'n', options: { [MTU]: mtu }, internal: false, enableIPv6 });

describe('the MTU option', () => {
  it('takes a number, 0 and absence as no MTU; refuses an empty value naming the option', () => {
    expect(mtuOption({ [MTU]: '1400' })).toBe(1400);
    expect(mtuOption({ [MTU]: '0' })).toBeUndefined();
    expect(mtuOption({})).toBeUndefined();
    expect(() => mtuOption({ [MTU]: '' })).toThrow(/^com\.docker\.network\.driver\.mtu: expected an MTU between 68 and 65535, got ""$/);
    expect(() => mtuOption({ [MTU]: '1e3' })).toThrow(/^com\.docker\.network\.driver\.mtu: expected an MTU/);
  });

  it.each([
    ['bridge', parseBridgeConfig],
    ['macvlan', (i: ReturnType<typeof input>) => parseMacvlanConfig({ ...i, options: { ...i.options, parent: 'eth0' } })],
  ] as const)('%s: refuses an MTU below 1280 with IPv6, naming the option and why; takes it without IPv6', (_name, parse) => {
    expect(() => parse(input('1000', true))).toThrow(/^com\.docker\.network\.driver\.mtu: 1000 is too small for a network with IPv6, which needs an MTU of at least 1280$/);
    expect(parse(input('1280', true)).mtu).toBe(1280);
    expect(parse(input('1000', false)).mtu).toBe(1000);
  });
});
