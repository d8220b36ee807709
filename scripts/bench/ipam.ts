// IPAM throughput: 100 000 allocations and 100 000 releases in one /16 (two rounds of 50 000, the
// second wrapping past the end), one store transaction per operation as the daemon does them, on a
// real WAL file in a temporary state directory. Peer: bare better-sqlite3 INSERT / DELETE
// transactions with the same pragmas, the floor cost of one durable write per operation.
//
// Design choice measured here: each pool's allocated set is mirrored in memory (a bitmap, see
// src/ipam/mirror.ts) and written in the same transaction as its row, so finding the next free
// address costs no query; the per-operation cost is the transaction itself.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { openStore } from '../../src/store/index.js';
import { Ipam } from '../../src/ipam/index.js';

const ROUNDS = 2;
const PER_ROUND = 50_000;

function opsPerSecond(ops: number, ns: bigint): number {
  return Math.round(ops / (Number(ns) / 1e9));
}

async function measureIpam(dir: string): Promise<{ allocate: number; release: number }> {
  const store = openStore(dir);
  try {
    const ipam = new Ipam(store, { environment: { linkRoutes: () => [], nameservers: () => [] } });
    const { poolId } = await ipam.requestPool({ addressSpace: 'LocalDefault', pool: '10.128.0.0/16' });
    let allocNs = 0n;
    let releaseNs = 0n;
    for (let round = 0; round < ROUNDS; round++) {
      const got: string[] = [];
      let t = process.hrtime.bigint();
      for (let i = 0; i < PER_ROUND; i++) got.push(ipam.requestAddress(poolId, { kind: 'endpoint', owner: `ep${round}-${i}` }));
      allocNs += process.hrtime.bigint() - t;
      if (new Set(got).size !== PER_ROUND) throw new Error('bench ipam: an address was handed out twice');
      t = process.hrtime.bigint();
      for (const address of got) ipam.releaseAddress(poolId, address);
      releaseNs += process.hrtime.bigint() - t;
    }
    if (ipam.listAddresses(poolId).length !== 0) throw new Error('bench ipam: addresses left after release');
    return { allocate: opsPerSecond(ROUNDS * PER_ROUND, allocNs), release: opsPerSecond(ROUNDS * PER_ROUND, releaseNs) };
  } finally {
    store.close();
  }
}

function measureBareSqlite(dir: string): { allocate: number; release: number } {
  const db = new Database(path.join(dir, 'peer.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE a (address TEXT PRIMARY KEY, owner TEXT NOT NULL) STRICT, WITHOUT ROWID');
    const insert = db.prepare('INSERT INTO a (address, owner) VALUES (?, ?)');
    const remove = db.prepare('DELETE FROM a WHERE address = ?');
    const tx = db.transaction((fn: () => void) => fn()).immediate;
    const n = ROUNDS * PER_ROUND;
    let t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) tx(() => insert.run(`10.128.${i >> 8}.${i & 255}`, `ep${i}`));
    const allocNs = process.hrtime.bigint() - t;
    t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) tx(() => remove.run(`10.128.${i >> 8}.${i & 255}`));
    return { allocate: opsPerSecond(n, allocNs), release: opsPerSecond(n, process.hrtime.bigint() - t) };
  } finally {
    db.close();
  }
}

export default async function ipamBench(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-bench-ipam-'));
  try {
    const ipam = await measureIpam(path.join(dir, 'state'));
    const peer = measureBareSqlite(dir);
    const line = (what: string, ours: number, theirs: number) =>
      console.log(`${what.padEnd(9)} cnmkit ipam ${String(ours).padStart(7)} ops/s   bare sqlite tx ${String(theirs).padStart(7)} ops/s   ratio ${(ours / theirs).toFixed(2)}`);
    console.log(`${ROUNDS * PER_ROUND} allocations and releases in 10.128.0.0/16, one transaction each (WAL, synchronous=NORMAL)`);
    line('allocate', ipam.allocate, peer.allocate);
    line('release', ipam.release, peer.release);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
