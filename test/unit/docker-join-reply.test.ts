// Docker's Join reply translated from a driver's JoinInfo, as the engine reads it: SrcName and
// DstPrefix (or DstName), the gateways, StaticRoutes with RouteType 0 (via NextHop) or 1
// (connected), DisableGatewayService; and no interface at all for a driver that has none.
import { describe, expect, it } from 'vitest';
import { joinReply } from '../../src/api/docker/driver-backend.js';
import type { JoinInfo } from '../../src/contract/driver.js';

const base: JoinInfo = { src: { name: 'c0123456789', where: 'host' }, dstPrefix: 'eth', routes: [], noGateway: false, ipv6Enabled: true, ipv4: '198.18.5.2/24' };

describe('Docker Join reply from JoinInfo', () => {
  it('names the link to move and the prefix, gives both gateways and the static routes by type', () => {
    const reply = joinReply({
      ...base, gateway: '198.18.5.1', gatewayV6: 'fd00:5::1',
      routes: [{ destination: '198.19.0.0/16', nextHop: '198.18.5.254' }, { destination: '198.18.9.0/24' }],
    });
    expect(reply).toEqual({
      InterfaceName: { SrcName: 'c0123456789', DstPrefix: 'eth' },
      Gateway: '198.18.5.1', GatewayIPv6: 'fd00:5::1',
      StaticRoutes: [{ Destination: '198.19.0.0/16', RouteType: 0, NextHop: '198.18.5.254' }, { Destination: '198.18.9.0/24', RouteType: 1 }],
    });
  });

  it('says DisableGatewayService for a network with no way out, and uses DstName when the driver fixes the name', () => {
    expect(joinReply({ ...base, noGateway: true, dstName: 'ovl0', dstPrefix: undefined })).toEqual({
      InterfaceName: { SrcName: 'c0123456789', DstName: 'ovl0' }, DisableGatewayService: true,
    });
  });

  it('is empty for a driver without an interface (null, host)', () => {
    expect(joinReply(undefined)).toEqual({});
  });
});
