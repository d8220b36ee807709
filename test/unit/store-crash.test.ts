import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DB_FILE, openStore } from '../../src/store/index.js';
import { Ipam } from '../../src/ipam/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const child = path.join(here, 'store-crash-child.ts');
const root = path.resolve(here, '../..');

/** Runs the writer until it has reported `atLeast` more commits, waits `delayMs`, then SIGKILLs it. */
function runAndKill(dir: string, atLeast: number, delayMs: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', child, dir], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const reported: number[] = [];
    let buffer = '';
    let stderr = '';
    let killing = false;
    proc.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      reported.push(...lines.map(Number));
      if (!killing && reported.length >= atLeast) {
        killing = true;
        setTimeout(() => proc.kill('SIGKILL'), delayMs);
      }
    });
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      if (signal === 'SIGKILL' && killing) resolve(reported);
      else reject(new Error(`writer exited early (code ${code}, signal ${signal}): ${stderr}`));
    });
  });
}

describe('store crash consistency', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-crash-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps every committed transaction whole when the writer is SIGKILLed mid-run, again and again', async () => {
    const reported = new Set<number>();
    for (const delayMs of [0, 7, 23]) {
      for (const i of await runAndKill(dir, 150, delayMs)) reported.add(i);
    }

    const raw = new Database(path.join(dir, DB_FILE));
    expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(raw.pragma('foreign_key_check')).toEqual([]);
    raw.close();

    const store = openStore(dir);
    const groups = new Set([...store.networks.list(), ...store.sandboxes.list(), ...store.endpoints.list()].map((r) => Number(r.id.slice(2))));
    const pool = store.ipam.listPools()[0]!;
    const owners = new Map(store.ipam.addressesOfPool(pool.id).map((a) => [a.owner, a.address]));
    for (const j of groups) {
      const ep = store.endpoints.get(`e-${j}`);
      const parts = [store.networks.get(`n-${j}`), store.sandboxes.get(`s-${j}`), ep, owners.get(`e-${j}`)];
      expect(parts.every((p) => p !== undefined), `group ${j} is half there`).toBe(true);
      expect(ep!.ipv4).toBe(`${owners.get(`e-${j}`)}/16`);
      expect(store.networks.get(`n-${j}`)!.state).toBe('ready');
    }
    expect(owners.size).toBe(groups.size);
    for (const i of reported) {
      const deletedLater = i % 10 === 0 && reported.has(i + 10);
      if (deletedLater) expect(groups.has(i), `group ${i} was deleted in a committed step`).toBe(false);
      else if (i % 10 !== 0) expect(groups.has(i), `committed group ${i} is missing`).toBe(true);
    }
    expect(reported.size).toBeGreaterThanOrEqual(450);

    const ipam = new Ipam(store, { environment: { linkRoutes: () => [], nameservers: () => [] } });
    const next = ipam.requestAddress(pool.id, { kind: 'endpoint', owner: 'after-crash' });
    expect([...owners.values()]).not.toContain(next.split('/')[0]);
    store.close();
  });
});
