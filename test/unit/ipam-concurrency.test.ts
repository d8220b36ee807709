import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';
import { Ipam } from '../../src/ipam/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const noHost = { linkRoutes: () => [], nameservers: () => [] };

/** Starts a child that requests `count` addresses once told "go"; resolves the child and its result. */
function startChild(dir: string, poolId: string, count: number, owner: string): Promise<{ go: () => void; result: Promise<string[]> }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'ipam-concurrent-child.ts'), dir, poolId, String(count), owner], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const result = new Promise<string[]>((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.split('\n')[1] ?? '[]') as string[]) : reject(new Error(`child ${owner} exited ${code}: ${err}`))));
  });
  return new Promise((resolve, reject) => {
    proc.stdout.on('data', (c: Buffer) => {
      const first = !out.includes('\n');
      out += c.toString();
      if (first && out.startsWith('ready\n')) resolve({ go: () => proc.stdin.write('go\n'), result });
    });
    result.catch(reject);
  });
}

describe('IPAM under concurrency and restarts', () => {
  let dir: string;
  const open: Store[] = [];
  const store = () => {
    const s = openStore(dir);
    open.push(s);
    return s;
  };
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-ipam-'));
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('never gives one address twice to 200 concurrent requests over two connections', async () => {
    const a = new Ipam(store(), { environment: noHost });
    const b = new Ipam(store(), { environment: noHost });
    const { poolId } = await a.requestPool({ addressSpace: 'LocalDefault', pool: '10.30.0.0/16' });
    const got = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        await sleep(i % 7);
        return (i % 2 === 0 ? a : b).requestAddress(poolId, { kind: 'endpoint', owner: `ep${i}` });
      }),
    );
    expect(new Set(got).size).toBe(200);
    expect(a.listAddresses(poolId)).toHaveLength(200);
    const sorted = got.map((g) => Number(g.split('/')[0]!.split('.')[3]) + 256 * Number(g.split('.')[2])).sort((x, y) => x - y);
    expect(sorted).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  });

  it('never gives one address twice to four processes requesting 50 each at once', async () => {
    const ipam = new Ipam(store(), { environment: noHost });
    const { poolId } = await ipam.requestPool({ addressSpace: 'LocalDefault', pool: '10.31.0.0/24' });
    ipam.requestAddress(poolId, { kind: 'gateway', owner: 'net' });
    const children = await Promise.all(['p0', 'p1', 'p2', 'p3'].map((owner) => startChild(dir, poolId, 50, owner)));
    for (const c of children) c.go();
    const got = (await Promise.all(children.map((c) => c.result))).flat();
    expect(got).toHaveLength(200);
    expect(new Set(got).size).toBe(200);
    expect(got).not.toContain('10.31.0.1/24');
    expect(ipam.listAddresses(poolId)).toHaveLength(201);
    expect(ipam.requestAddress(poolId, { kind: 'endpoint', owner: 'parent' })).toBe('10.31.0.202/24');
  }, 60_000);

  it('keeps allocations and the allocation cursor across a restart', async () => {
    const first = store();
    const ipam = new Ipam(first, { environment: noHost });
    const rec = await ipam.allocateSubnet({ subnet: '10.32.0.0/24', auxAddresses: { r: '10.32.0.200' }, owner: 'net' });
    for (let i = 0; i < 5; i++) ipam.requestAddress(rec.poolId, { kind: 'endpoint', owner: `ep${i}` });
    ipam.releaseAddress(rec.poolId, '10.32.0.3');
    const before = ipam.listAddresses(rec.poolId);
    first.close();

    const again = new Ipam(store(), { environment: noHost });
    expect(again.listAddresses(rec.poolId)).toEqual(before);
    expect(again.getPool(rec.poolId)).toMatchObject({ pool: '10.32.0.0/24', owner: 'net' });
    expect(again.requestAddress(rec.poolId, { kind: 'endpoint', owner: 'next' })).toBe('10.32.0.7/24');
    expect(() => again.requestAddress(rec.poolId, { kind: 'endpoint', owner: 'x', address: '10.32.0.200' })).toThrow(/auxiliary address "r"/);
    expect((await again.requestPool({ addressSpace: 'LocalDefault' })).pool).toBe('172.17.0.0/16');
  });
});
