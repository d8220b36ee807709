// Host port allocation: ephemeral order and wrap, explicit ports and ranges, conflicts that
// name their holder, wildcard addresses, idempotent release, all-or-nothing, restore and hooks.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConflictError, InvalidArgumentError } from '../../src/errors.js';
import { PortAllocator, readEphemeralRange, type LeaseChange } from '../../src/portmap/allocator.js';
import { parsePublish } from '../../src/portmap/spec.js';

const small = (): PortAllocator => new PortAllocator({ ephemeralRange: { start: 40000, end: 40004 } });
const hostPorts = (a: PortAllocator, owner: string, raw: string): number[] => a.allocate(owner, parsePublish(raw)).map((s) => s.hostPort);

describe('ephemeral range', () => {
  it('reads ip_local_port_range and falls back to 49153-65535', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-pm-'));
    try {
      const file = path.join(dir, 'range');
      fs.writeFileSync(file, '32768\t60999\n');
      expect(readEphemeralRange(file)).toEqual({ start: 32768, end: 60999 });
      fs.writeFileSync(file, 'garbage\n');
      expect(readEphemeralRange(file)).toEqual({ start: 49153, end: 65535 });
      expect(readEphemeralRange(path.join(dir, 'missing'))).toEqual({ start: 49153, end: 65535 });
      expect(new PortAllocator({ rangeFile: file }).ephemeral).toEqual({ start: 49153, end: 65535 });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a bad configured range', () => {
    expect(() => new PortAllocator({ ephemeralRange: { start: 100, end: 99 } })).toThrow(/^ephemeralRange: 100-99 is not a port range/);
  });
});

describe('PortAllocator', () => {
  it('hands out ephemeral ports in order, next after the last, and wraps around', () => {
    const a = small();
    expect(hostPorts(a, 'a', '80')).toEqual([40000]);
    expect(hostPorts(a, 'b', '80')).toEqual([40001]);
    expect(hostPorts(a, 'c', '80-82')).toEqual([40002, 40003, 40004]);
    a.release('a');
    a.release('c');
    // The cursor is at 40004: the next one wraps to the start, skipping what is still held.
    expect(hostPorts(a, 'd', '80')).toEqual([40000]);
    expect(hostPorts(a, 'e', '80')).toEqual([40002]);
    expect(a.allocate('e', parsePublish('81-82'))).toEqual([
      { proto: 'tcp', hostPort: 40003, hostPortEnd: 40003, containerPort: 81, containerPortEnd: 81 },
      { proto: 'tcp', hostPort: 40004, hostPortEnd: 40004, containerPort: 82, containerPortEnd: 82 },
    ]);
    expect(() => a.allocate('f', parsePublish('80'))).toThrow(/^no free tcp port in 40000-40004 on all addresses$/);
  });

  it('keeps one cursor per host IP and protocol', () => {
    const a = small();
    expect(hostPorts(a, 'a', '127.0.0.1::80')).toEqual([40000]);
    expect(hostPorts(a, 'b', '127.0.0.2::80')).toEqual([40000]);
    expect(hostPorts(a, 'c', '127.0.0.1::53/udp')).toEqual([40000]);
    expect(hostPorts(a, 'd', '127.0.0.1::80')).toEqual([40001]);
  });

  it('refuses a port already taken, naming its holder, never last-writer-wins', () => {
    const a = small();
    a.allocate('web-1', parsePublish('8080:80'));
    let err: unknown;
    try {
      a.allocate('web-2', parsePublish('8080:80'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toBe('port 8080/tcp on all addresses is already allocated to "web-1" (its lease: all addresses 8080-8080)');
    expect(a.holder('tcp', undefined, 8080)).toBe('web-1');
    expect(a.leases().map((l) => l.owner)).toEqual(['web-1']);
    // Another protocol is another port.
    expect(hostPorts(a, 'dns', '8080:80/udp')).toEqual([8080]);
  });

  it('makes 0.0.0.0 conflict with every IPv4 address of the same protocol, and the other way round', () => {
    const a = small();
    a.allocate('any4', parsePublish('0.0.0.0:8080:80'));
    expect(() => a.allocate('x', parsePublish('127.0.0.1:8080:80'))).toThrow(/already allocated to "any4"/);
    expect(() => a.allocate('x', parsePublish('8080:80'))).toThrow(/already allocated to "any4"/);
    expect(hostPorts(a, 'v6', '[::1]:8080:80')).toEqual([8080]);
    expect(hostPorts(a, 'udp', '127.0.0.1:8080:80/udp')).toEqual([8080]);

    a.allocate('one', parsePublish('10.0.0.1:9090:90'));
    expect(hostPorts(a, 'two', '10.0.0.2:9090:90')).toEqual([9090]);
    expect(() => a.allocate('x', parsePublish('0.0.0.0:9090:90'))).toThrow(/already allocated to "one"/);
    expect(() => a.allocate('x', parsePublish('[::]:8080:80'))).toThrow(/already allocated to "v6"/);
  });

  it('allocates explicit ranges all or nothing', () => {
    const a = small();
    a.allocate('mid', parsePublish('8005:80'));
    expect(() => a.allocate('range', parsePublish('8000-8010:80-90'))).toThrow(/^port 8005\/tcp on all addresses is already allocated to "mid"/);
    expect(a.leases('range')).toEqual([]);
    expect(a.holder('tcp', undefined, 8000)).toBeUndefined();
    expect(a.allocate('range', parsePublish('8011-8020:80-89'))).toEqual([
      { proto: 'tcp', hostPort: 8011, hostPortEnd: 8020, containerPort: 80, containerPortEnd: 89 },
    ]);
    expect(a.leases('range')).toEqual([{ owner: 'range', proto: 'tcp', hostPort: 8011, hostPortEnd: 8020 }]);
  });

  it('picks one free host port from a host range for a single container port, like Docker', () => {
    const a = small();
    a.allocate('x', parsePublish('8000:80'));
    expect(a.allocate('y', parsePublish('8000-8002:80'))).toEqual([{ proto: 'tcp', hostPort: 8001, hostPortEnd: 8001, containerPort: 80, containerPortEnd: 80 }]);
    expect(hostPorts(a, 'z', '8000-8002:80')).toEqual([8002]);
    expect(() => a.allocate('w', parsePublish('8000-8002:80'))).toThrow(/^no free tcp port in 8000-8002/);
  });

  it('undoes a partly done ephemeral range and leaves the cursor where it was', () => {
    const a = small();
    a.allocate('held', parsePublish('40003:1'));
    a.allocate('held', parsePublish('40004:1'));
    expect(() => a.allocate('big', parsePublish('80-83'))).toThrow(/no free tcp port/);
    expect(a.leases('big')).toEqual([]);
    expect(hostPorts(a, 'next', '80')).toEqual([40000]);
  });

  it('releases idempotently and frees the ports for others', () => {
    const a = small();
    a.allocate('a', parsePublish('8080:80'));
    a.allocate('a', parsePublish('8443:443'));
    expect(a.release('a').map((l) => l.hostPort)).toEqual([8080, 8443]);
    expect(a.release('a')).toEqual([]);
    expect(a.release('never-seen')).toEqual([]);
    expect(hostPorts(a, 'b', '8080:80')).toEqual([8080]);
  });

  it('calls the persistence hook before keeping a change, and undoes it when the hook throws', () => {
    const changes: LeaseChange[] = [];
    let fail = false;
    const a = new PortAllocator({
      ephemeralRange: { start: 40000, end: 40004 },
      onChange: (c) => {
        if (fail) throw new Error('store is down');
        changes.push(c);
      },
    });
    a.allocate('a', parsePublish('127.0.0.1:8080:80'));
    expect(changes).toEqual([{ op: 'allocate', leases: [{ owner: 'a', proto: 'tcp', hostIP: '127.0.0.1', hostPort: 8080, hostPortEnd: 8080 }] }]);
    fail = true;
    expect(() => a.allocate('b', parsePublish('80'))).toThrow('store is down');
    expect(a.leases('b')).toEqual([]);
    expect(() => a.release('a')).toThrow('store is down');
    expect(a.holder('tcp', '127.0.0.1', 8080)).toBe('a');
    fail = false;
    expect(hostPorts(a, 'b', '80')).toEqual([40000]);
    a.release('a');
    expect(changes.at(-1)).toEqual({ op: 'release', leases: [{ owner: 'a', proto: 'tcp', hostIP: '127.0.0.1', hostPort: 8080, hostPortEnd: 8080 }] });
  });

  it('restores leases from the store all or nothing, without calling the hook', () => {
    const changes: LeaseChange[] = [];
    const a = new PortAllocator({ ephemeralRange: { start: 40000, end: 40004 }, onChange: (c) => changes.push(c) });
    a.restore([
      { owner: 'a', proto: 'tcp', hostPort: 40000, hostPortEnd: 40000 },
      { owner: 'b', proto: 'udp', hostIP: '10.0.0.1', hostPort: 53, hostPortEnd: 53 },
    ]);
    expect(changes).toEqual([]);
    expect(hostPorts(a, 'c', '80')).toEqual([40001]);
    expect(() => a.restore([{ owner: 'd', proto: 'tcp', hostPort: 9000, hostPortEnd: 9000 }, { owner: 'e', proto: 'udp', hostPort: 53, hostPortEnd: 53 }])).toThrow(
      /port 53\/udp on all addresses is already allocated to "b"/,
    );
    expect(a.holder('tcp', undefined, 9000)).toBeUndefined();
    expect(() => a.restore([{ owner: '', proto: 'tcp', hostPort: 1, hostPortEnd: 1 }])).toThrow(/^leases\[0\]\.owner: /);
    expect(() => a.restore([{ owner: 'x', proto: 'tcp', hostPort: 0, hostPortEnd: 1 }])).toThrow(/^leases\[0\]\.hostPort: /);
  });

  it('refuses bad input naming the field, holding nothing', () => {
    const a = small();
    expect(() => a.allocate('', parsePublish('80'))).toThrow(InvalidArgumentError);
    expect(() => a.allocate('', parsePublish('80'))).toThrow(/^owner: an owner id is required$/);
    const bad = { proto: 'tcp' as const, hostPort: 9000, hostPortEnd: 8000, containerPort: 80, containerPortEnd: 80 };
    expect(() => a.allocate('x', bad)).toThrow(/^spec\.hostPortEnd: 8000 is below hostPort 9000$/);
    expect(a.leases()).toEqual([]);
  });

  it('keeps a 10 000-port range as one lease', () => {
    const a = new PortAllocator({ ephemeralRange: { start: 40000, end: 40004 } });
    a.allocate('big', parsePublish('20000-29999:20000-29999'));
    expect(a.leases()).toHaveLength(1);
    expect(a.holder('tcp', '127.0.0.1', 29999)).toBe('big');
    expect(a.release('big')).toHaveLength(1);
    expect(a.holder('tcp', undefined, 20000)).toBeUndefined();
  });
});
