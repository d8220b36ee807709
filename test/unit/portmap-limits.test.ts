// The userland proxy's limits without sockets: defaults derived from the fd limit, settings that
// do not fit refused naming the flag, the --proxy-* flag values, the publish check (ports counted
// before allocation, --proxy-max-ports and free fds) and the rate-limited log of limit hits.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { checkPortCapacity, fdReserve, LimitLog, parseDuration, proxyFlagOptions, readFdLimit, resolveProxyLimits } from '../../src/portmap/limits.js';
import { proxiedPorts } from '../../src/portmap/publisher.js';
import type { PortSpec } from '../../src/portmap/spec.js';

describe('proxy limits', () => {
  it('derives defaults from the fd limit: a reserve, half the rest for ports, the other half for connections at 2 fds', () => {
    expect(resolveProxyLimits({ fdLimit: 20_000 })).toEqual({
      fdLimit: 20_000, reserve: 4096, maxPorts: 7952, maxConnections: 3976, maxConnectionsPerPort: 1988, idleTimeoutMs: 0, udpIdleTimeoutMs: 30_000,
    });
    expect(resolveProxyLimits({ fdLimit: 1024 })).toMatchObject({ reserve: 256, maxPorts: 384, maxConnections: 192, maxConnectionsPerPort: 96 });
    // What ports leave over goes to connections.
    expect(resolveProxyLimits({ fdLimit: 20_000, maxPorts: 12_000 })).toMatchObject({ maxPorts: 12_000, maxConnections: 1952 });
    expect(fdReserve(1 << 20)).toBe(4096);
    expect(readFdLimit()).toBeGreaterThan(0);
  });

  it('refuses settings whose fds do not fit, naming the flag and the numbers', () => {
    expect(() => resolveProxyLimits({ fdLimit: 20_000, maxConnections: 10_000 })).toThrow(
      /^maxConnections: 7952 ports and 10000 connections need 27952 file descriptors, but the fd limit 20000 less 4096 kept for the daemon allows 15904 \(--proxy-max-ports 7952, --proxy-max-connections 10000\): lower one, or raise the limit/,
    );
    expect(() => resolveProxyLimits({ fdLimit: 20_000, maxPorts: 20_000 })).toThrow(
      /^maxPorts: 20000 ports leave no file descriptors for connections: the fd limit 20000 less 4096 kept for the daemon allows 15904; lower it, or raise the limit/,
    );
    expect(() => resolveProxyLimits({ maxConnectionsPerPort: 0 })).toThrow(/^maxConnectionsPerPort: 0 is not an integer of at least 1 \(--proxy-max-connections-per-port\)$/);
    expect(() => resolveProxyLimits({ idleTimeoutMs: -1 })).toThrow(/^idleTimeoutMs: -1 is not an integer of at least 0/);
  });

  it('reads the daemon flags: counts and durations', () => {
    expect(proxyFlagOptions({})).toEqual({});
    expect(
      proxyFlagOptions({
        'proxy-max-connections': '1000', 'proxy-max-connections-per-port': '10', 'proxy-max-ports': '50', 'proxy-idle-timeout': '1.5m', 'proxy-udp-idle-timeout': '90s',
      }),
    ).toEqual({ maxConnections: 1000, maxConnectionsPerPort: 10, maxPorts: 50, idleTimeoutMs: 90_000, udpIdleTimeoutMs: 90_000 });
    expect(parseDuration('0', 'f')).toBe(0);
    expect(parseDuration('250ms', 'f')).toBe(250);
    expect(parseDuration('2h', 'f')).toBe(7_200_000);
    expect(() => proxyFlagOptions({ 'proxy-max-connections': '0' })).toThrow(/^--proxy-max-connections: expected a whole number, at least 1, got "0"$/);
    expect(() => proxyFlagOptions({ 'proxy-max-ports': '1e3' })).toThrow(/^--proxy-max-ports: expected a whole number, at least 1, got "1e3"$/);
    expect(() => proxyFlagOptions({ 'proxy-idle-timeout': '10' })).toThrow(/^--proxy-idle-timeout: expected a duration such as 30s, 5m, 1h or 0, got "10"$/);
    expect(() => proxyFlagOptions({ 'proxy-udp-idle-timeout': '0' })).toThrow(/^--proxy-udp-idle-timeout: expected a duration above 0 \(a UDP flow ends only by silence\), got "0"$/);
  });

  it('cnmkit daemon refuses bad --proxy-* flags before anything else, naming the flag', () => {
    const cli = path.resolve(import.meta.dirname, '../../bin/cnmkit');
    const daemon = (...args: string[]) => spawnSync(process.execPath, [cli, 'daemon', ...args], { encoding: 'utf8', timeout: 20_000 });
    expect(daemon('--proxy-max-connections', '0')).toMatchObject({ status: 2, stderr: 'cnmkit: --proxy-max-connections: expected a whole number, at least 1, got "0"\n' });
    expect(daemon('--proxy-idle-timeout', '5')).toMatchObject({ status: 2, stderr: expect.stringContaining('--proxy-idle-timeout: expected a duration such as 30s, 5m, 1h or 0, got "5"') });
    const tooMany = daemon('--proxy-max-connections', '100000000');
    expect(tooMany.status).toBe(2);
    expect(tooMany.stderr).toMatch(/^cnmkit: --proxy-max-connections: \d+ ports and 100000000 connections need \d+ file descriptors, but the fd limit/);
  });

  it('counts the ports a publish would hold before any is allocated', () => {
    const spec = (s: Partial<PortSpec>): PortSpec => ({ proto: 'tcp', hostPort: 0, hostPortEnd: 0, containerPort: 80, containerPortEnd: 80, ...s });
    expect(proxiedPorts([spec({})])).toBe(1);
    expect(proxiedPorts([spec({ containerPortEnd: 89 })])).toBe(10);
    expect(proxiedPorts([spec({ hostPort: 8000, hostPortEnd: 8100 })])).toBe(1);
    expect(proxiedPorts([spec({ proto: 'udp', hostPort: 1, hostPortEnd: 65535, containerPort: 1, containerPortEnd: 65535 })])).toBe(65535);
    expect(proxiedPorts([spec({ proto: 'sctp', hostPort: 1, hostPortEnd: 100, containerPort: 1, containerPortEnd: 100 })])).toBe(0);
  });

  it('refuses a publish over --proxy-max-ports, or over the fds free once the reserve and connections are kept', () => {
    const limits = resolveProxyLimits({ fdLimit: 20_000 });
    expect(() => checkPortCapacity(limits, 7952, { held: 0, connections: 0 }, () => 100)).not.toThrow();
    expect(() => checkPortCapacity(limits, 65535, { held: 0, connections: 0 }, () => 100)).toThrow(
      expect.objectContaining({
        name: 'InvalidArgumentError', field: 'ports', message: expect.stringMatching(/^ports: publishing 65535 ports through the userland proxy needs 65535 file descriptors, but --proxy-max-ports allows 7952 and 0 are published/),
      }),
    );
    expect(() => checkPortCapacity(limits, 2, { held: 7951, connections: 0 }, () => 100)).toThrow(/allows 7952 and 7951 are published/);
    // 11 000 fds open elsewhere in the daemon (past its reserve): 1000 ports no longer fit next to the connections.
    expect(() => checkPortCapacity(limits, 1000, { held: 0, connections: 0 }, () => 11_000)).toThrow(
      expect.objectContaining({ code: 'ERR_PROXY_NO_FILES', field: 'ports', message: expect.stringMatching(/needs 1000 file descriptors, but only 984 are free \(fd limit 20000, 11000 open, 8016 kept for connections and the firewall\)$/) }),
    );
    // Live connections are open already: their slots are not kept twice.
    expect(() => checkPortCapacity(limits, 1000, { held: 0, connections: 100 }, () => 11_000)).not.toThrow();
    expect(() => checkPortCapacity(limits, 0, { held: 99_999, connections: 0 }, () => 0)).not.toThrow();
  });

  it('logs a limit once per interval per reason, with the hits since the last line', () => {
    vi.useFakeTimers();
    try {
      const warn = vi.fn();
      const log = new LimitLog({ warn, info: vi.fn(), debug: vi.fn(), error: vi.fn() }, 30_000);
      log.hit('max-connections', 1, { hostPort: 80 });
      log.hit('max-connections', 5, { hostPort: 80 });
      log.hit('max-connections-per-port', 1, { hostPort: 81 });
      vi.advanceTimersByTime(30_000);
      log.hit('max-connections', 9, { hostPort: 80 });
      expect(warn.mock.calls).toEqual([
        [{ reason: 'max-connections', hits: 1, sinceLastLog: 1, hostPort: 80 }, 'proxy: max-connections limit reached, refusing new connections'],
        [{ reason: 'max-connections-per-port', hits: 1, sinceLastLog: 1, hostPort: 81 }, 'proxy: max-connections-per-port limit reached, refusing new connections'],
        [{ reason: 'max-connections', hits: 9, sinceLastLog: 8, hostPort: 80 }, 'proxy: max-connections limit reached, refusing new connections'],
      ]);
    } finally {
      vi.useRealTimers();
    }
  });
});
