// `-p` strings and Docker PortBindings parsed into PortSpec, errors naming field and reason,
// and formatPortSpec giving back a string that parses to the same spec.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { formatPortSpec, parsePortBinding, parsePortBindings, parsePublish, validatePortSpec, type PortSpec } from '../../src/portmap/spec.js';

const tcp = (host: number, hostEnd: number, c: number, cEnd: number, hostIP?: string): PortSpec => ({
  proto: 'tcp',
  ...(hostIP === undefined ? {} : { hostIP }),
  hostPort: host,
  hostPortEnd: hostEnd,
  containerPort: c,
  containerPortEnd: cEnd,
});

describe('parsePublish (-p)', () => {
  it.each<[string, PortSpec]>([
    ['80', tcp(0, 0, 80, 80)],
    ['8080:80', tcp(8080, 8080, 80, 80)],
    ['0:80', tcp(0, 0, 80, 80)],
    ['127.0.0.1:8080:80', tcp(8080, 8080, 80, 80, '127.0.0.1')],
    ['127.0.0.1::80', tcp(0, 0, 80, 80, '127.0.0.1')],
    [':8080:80', tcp(8080, 8080, 80, 80)],
    ['[::1]:8080:80', tcp(8080, 8080, 80, 80, '::1')],
    ['[2001:DB8:0::1]::80', tcp(0, 0, 80, 80, '2001:db8::1')],
    ['8000-8010:80', tcp(8000, 8010, 80, 80)],
    ['8000-8010:80-90', tcp(8000, 8010, 80, 90)],
    ['80-90', tcp(0, 0, 80, 90)],
    ['0.0.0.0:1-65535:1-65535', tcp(1, 65535, 1, 65535, '0.0.0.0')],
    ['53:53/udp', { proto: 'udp', hostPort: 53, hostPortEnd: 53, containerPort: 53, containerPortEnd: 53 }],
    ['9:9/SCTP', { proto: 'sctp', hostPort: 9, hostPortEnd: 9, containerPort: 9, containerPortEnd: 9 }],
  ])('parses %j', (raw, expected) => {
    expect(parsePublish(raw)).toEqual(expected);
  });

  it.each<[string, RegExp]>([
    ['', /a port spec is required/],
    ['0', /container port 0 is out of range 1-65535/],
    ['65536', /container port 65536 is out of range/],
    ['8080:70000', /container port 70000 is out of range/],
    ['70000:80', /host port 70000 is out of range/],
    ['0-10:80', /host port 0 is out of range/],
    ['http', /container port "http" is not a port number/],
    ['-5:80', /host port "" is not a port number/],
    ['90-80', /container port range 90-80 ends before it starts/],
    ['8010-8000:80', /host port range 8010-8000 ends before it starts/],
    ['8000-8010:80-85', /host range 8000-8010 and container range 80-85 differ in size/],
    ['8000:80-81', /host range 8000-8000 and container range 80-81 differ in size/],
    ['80/icmp', /protocol "icmp" is not one of tcp, udp, sctp/],
    ['80/', /protocol "" is not one of/],
    ['80/tcp/udp', /container port "80\/tcp" is not a port number/],
    ['300.1.1.1:80:80', /"300.1.1.1" is not an IPv4 or IPv6 address/],
    ['::1:8080:80', /too many ":" .* in brackets/],
    ['[::1:8080:80', /unclosed "\["/],
    ['[::1]8080:80', /expected \[HOST_IP\]:\[HOST_PORT\]:CONTAINER_PORT/],
    ['[fe80::1%eth0]:80:80', /zone indexes are not supported/],
    ['[::ffff:10.0.0.1]:80:80', /IPv4-mapped address/],
  ])('refuses %j naming the field "publish"', (raw, why) => {
    const attempt = (): PortSpec => parsePublish(raw);
    expect(attempt).toThrow(InvalidArgumentError);
    expect(attempt).toThrow(why);
    expect(attempt).toThrow(/^publish: /);
    expect(() => parsePublish(raw, 'ports[2]')).toThrow(expect.objectContaining({ field: 'ports[2]' }));
  });

  it.each(['80', '8080:80', '127.0.0.1::80/udp', '[::1]:8080:80', '8000-8010:80', '8000-8010:80-90/sctp', '80-90', '[::]::53/udp'])(
    'formats %j back to a string that parses to the same spec',
    (raw) => {
      const spec = parsePublish(raw);
      const text = formatPortSpec(spec);
      expect(text).toMatch(/\/(tcp|udp|sctp)$/);
      expect(parsePublish(text)).toEqual(spec);
    },
  );

  it('formats the usual shapes', () => {
    expect(formatPortSpec(parsePublish('80'))).toBe('80/tcp');
    expect(formatPortSpec(parsePublish('127.0.0.1::80/udp'))).toBe('127.0.0.1::80/udp');
    expect(formatPortSpec(parsePublish('[::1]:8000-8010:80'))).toBe('[::1]:8000-8010:80/tcp');
  });
});

describe('parsePortBinding (Docker JSON)', () => {
  it.each<[object, PortSpec]>([
    [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 }, tcp(8080, 8080, 80, 80)],
    [{ Proto: 6, IP: '172.18.0.2', Port: 80, HostIP: '127.0.0.1', HostPort: 0, HostPortEnd: 0 }, tcp(0, 0, 80, 80, '127.0.0.1')],
    [{ Proto: 6, Port: 80, HostPort: 8000, HostPortEnd: 8010 }, tcp(8000, 8010, 80, 80)],
    [{ Proto: 6, Port: 80, HostPort: 8080, HostPortEnd: 0 }, tcp(8080, 8080, 80, 80)],
    [{ Proto: 6, Port: 80 }, tcp(0, 0, 80, 80)],
    [{ Proto: 17, Port: 53, HostIP: '::', HostPort: 5353 }, { proto: 'udp', hostIP: '::', hostPort: 5353, hostPortEnd: 5353, containerPort: 53, containerPortEnd: 53 }],
    [{ Proto: 132, Port: 9, HostPort: 9, HostPortEnd: 9 }, { proto: 'sctp', hostPort: 9, hostPortEnd: 9, containerPort: 9, containerPortEnd: 9 }],
  ])('parses %j', (binding, expected) => {
    expect(parsePortBinding(binding)).toEqual(expected);
  });

  it.each<[unknown, string, RegExp]>([
    [{ Proto: 1, Port: 80 }, 'Proto', /1 is not a known protocol number \(6 tcp, 17 udp, 132 sctp\)/],
    [{ Proto: 'tcp', Port: 80 }, 'Proto', /"tcp" is not a known protocol number/],
    [{ Proto: 6, Port: 0 }, 'Port', /0 is out of range 1-65535/],
    [{ Proto: 6, Port: 80.5 }, 'Port', /80.5 is not an integer/],
    [{ Proto: 6, Port: 80, HostPort: 65536 }, 'HostPort', /65536 is out of range 0-65535/],
    [{ Proto: 6, Port: 80, HostPort: '8080' }, 'HostPort', /"8080" is not an integer/],
    [{ Proto: 6, Port: 80, HostPort: 8080, HostPortEnd: 8000 }, 'HostPortEnd', /8000 is below HostPort 8080/],
    [{ Proto: 6, Port: 80, HostPort: 0, HostPortEnd: 8000 }, 'HostPortEnd', /8000 is set while HostPort is 0/],
    [{ Proto: 6, Port: 80, HostIP: 'localhost' }, 'HostIP', /"localhost" is not an IPv4 or IPv6 address/],
    [{ Proto: 6, Port: 80, HostIP: 7 }, 'HostIP', /7 is not a string/],
    [{ Proto: 6, Port: 80, IP: '1.2.3' }, 'IP', /"1.2.3" is not an IPv4 or IPv6 address/],
    [null, 'PortBinding', /a PortBinding object is required/],
  ])('refuses %j naming the field %s', (binding, field, why) => {
    const attempt = (): PortSpec => parsePortBinding(binding);
    expect(attempt).toThrow(InvalidArgumentError);
    expect(attempt).toThrow(why);
    expect(attempt).toThrow(new RegExp(`^${field}: `));
    expect(attempt).toThrow(expect.objectContaining({ field }));
  });

  it('parses the engine portmap list and names the index in errors', () => {
    const list = [
      { Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 },
      { Proto: 17, IP: '', Port: 53, HostIP: '', HostPort: 0, HostPortEnd: 0 },
    ];
    expect(parsePortBindings(list).map(formatPortSpec)).toEqual(['8080:80/tcp', '53/udp']);
    expect(parsePortBindings(undefined)).toEqual([]);
    expect(parsePortBindings([])).toEqual([]);
    expect(() => parsePortBindings([list[0], { ...list[1], HostPort: -1 }])).toThrow(/^portmap\[1\]\.HostPort: -1 is out of range 0-65535$/);
    expect(() => parsePortBindings({})).toThrow(/^portmap: a list of PortBinding objects is required$/);
  });
});

describe('validatePortSpec (specs arriving as data)', () => {
  it('returns a clean copy of a valid spec', () => {
    const spec = { proto: 'udp', hostIP: '0:0::1', hostPort: 5000, hostPortEnd: 5001, containerPort: 53, containerPortEnd: 54, extra: 1 };
    expect(validatePortSpec(spec)).toEqual({ proto: 'udp', hostIP: '::1', hostPort: 5000, hostPortEnd: 5001, containerPort: 53, containerPortEnd: 54 });
  });

  it.each<[object, string]>([
    [{ proto: 'gre', hostPort: 1, hostPortEnd: 1, containerPort: 1, containerPortEnd: 1 }, 'spec.proto'],
    [{ proto: 'tcp', hostPort: 0, hostPortEnd: 5, containerPort: 1, containerPortEnd: 1 }, 'spec.hostPortEnd'],
    [{ proto: 'tcp', hostPort: 1, hostPortEnd: 1, containerPort: 0, containerPortEnd: 1 }, 'spec.containerPort'],
    [{ proto: 'tcp', hostPort: 1, hostPortEnd: 1, containerPort: 5, containerPortEnd: 4 }, 'spec.containerPortEnd'],
    [{ proto: 'tcp', hostPort: 1, hostPortEnd: 2, containerPort: 5, containerPortEnd: 7 }, 'spec'],
    [{ proto: 'tcp', hostIP: 'x', hostPort: 1, hostPortEnd: 1, containerPort: 5, containerPortEnd: 5 }, 'spec.hostIP'],
  ])('refuses %j naming %s', (spec, field) => {
    expect(() => validatePortSpec(spec)).toThrow(expect.objectContaining({ name: 'InvalidArgumentError', field }));
  });
});
