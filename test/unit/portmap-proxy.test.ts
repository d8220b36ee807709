// The userland proxy's input checks, which run before any socket exists (this tier opens none:
// forwarding with real packets is in test/netns/portmap-proxy*.test.ts).
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { UserlandProxy, type ProxyMapping } from '../../src/portmap/proxy.js';

const good: ProxyMapping = { proto: 'tcp', hostPort: 8080, containerIP: '198.18.0.2', containerPort: 80 };

describe('UserlandProxy input checks', () => {
  it.each<[unknown, string, RegExp]>([
    [{ ...good, proto: 'sctp' }, 'mappings[1].proto', /sctp is not forwarded by the userland proxy/],
    [{ ...good, proto: 'icmp' }, 'mappings[1].proto', /"icmp" is not tcp or udp/],
    [{ ...good, hostPort: 0 }, 'mappings[1].hostPort', /0 is not a port in 1-65535/],
    [{ ...good, hostPort: 8090, hostPortEnd: 8089 }, 'mappings[1].hostPortEnd', /8089 is below hostPort 8090/],
    [{ ...good, hostPort: 8090, hostPortEnd: 8091 }, 'mappings[1].containerPortEnd', /container range 80-80 and host range 8090-8091 differ in size/],
    [{ ...good, hostPort: 8090, containerPort: 70000 }, 'mappings[1].containerPort', /70000 is not a port/],
    [{ ...good, hostPort: 8090, containerIP: undefined }, 'mappings[1].containerIP', /a container address is required/],
    [{ ...good, hostPort: 8090, containerIP: '0.0.0.0' }, 'mappings[1].containerIP', /0.0.0.0 is not a container address/],
    [{ ...good, hostPort: 8090, hostIP: 'localhost' }, 'mappings[1].hostIP', /"localhost" is not an IPv4 or IPv6 address/],
    [{ ...good, hostPort: 8079, hostPortEnd: 8080, containerPort: 79, containerPortEnd: 80 }, 'mappings[1].hostPort', /port 8080\/tcp is published twice in this batch/],
    [{ ...good, hostIP: '127.0.0.1' }, 'mappings[1].hostPort', /port 8080\/tcp is published twice/],
    [null, 'mappings[1]', /a mapping object is required/],
  ])('refuses %j naming %s', async (second, field, why) => {
    const proxy = new UserlandProxy();
    const attempt = proxy.publish('ep', [good, second as ProxyMapping]);
    await expect(attempt).rejects.toMatchObject({ name: 'InvalidArgumentError', field, message: expect.stringMatching(why) });
    expect(proxy.list()).toEqual([]);
  });

  it('finds no clash in one port on two address families or two protocols: a batch of those fails only on its bad fourth entry, binding nothing', async () => {
    const proxy = new UserlandProxy();
    // Publishing such a batch for real is test/netns/portmap-proxy.test.ts (this tier opens no socket).
    const batch = [
      { ...good, hostIP: '0.0.0.0' },
      { ...good, hostIP: '::' },
      { ...good, proto: 'udp' as const },
      { ...good, hostPort: 1, containerIP: 'bad' },
    ];
    await expect(proxy.publish('ep', batch)).rejects.toMatchObject({ field: 'mappings[3].containerIP' });
    expect(proxy.list()).toEqual([]);
  });

  it('refuses a missing owner or a non-list, and publishing after close', async () => {
    const proxy = new UserlandProxy({ logger: pino({ level: 'silent' }), udpIdleTimeoutMs: 1000 });
    await expect(proxy.publish('', [good])).rejects.toMatchObject({ field: 'owner' });
    await expect(proxy.publish('ep', {} as ProxyMapping[])).rejects.toMatchObject({ field: 'mappings' });
    expect(await proxy.publish('ep', [])).toEqual([]);
    expect(await proxy.unpublish('ep')).toBe(0);
    await proxy.close();
    await expect(proxy.publish('ep', [])).rejects.toMatchObject({ code: 'ERR_PROXY_CLOSED' });
  });

  it('refuses a bad UDP idle timeout', () => {
    expect(() => new UserlandProxy({ udpIdleTimeoutMs: 0 })).toThrow(/^udpIdleTimeoutMs: 0 is not an integer of at least 1 \(--proxy-udp-idle-timeout\)$/);
  });
});
