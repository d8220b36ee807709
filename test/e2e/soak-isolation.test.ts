// `npm run soak` runs isolated (scripts/soak/isolate.ts): a short soak (fuzzing and kill -9 on a
// host of its own) leaves the real host's snapshot unchanged, and none of its namespaces ever
// shows in the host's /run/netns or `ip netns list` while it runs, although it made and removed
// namespaces, networks and sandboxes inside (its figures count them).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { run } from '../helpers/exec.js';
import { diffSnapshots, hostTarget, takeSnapshot } from '../helpers/host-snapshot.js';

const repo = path.resolve(import.meta.dirname, '../..');

function soak(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repo, 'node_modules/tsx/dist/cli.mjs'), path.join(repo, 'scripts/soak/index.ts'), ...args], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, out }));
  });
}

describeRoot('the soak, isolated', () => {
  it('changes nothing the host can see, and its namespaces never show outside', { timeout: 600_000 }, async () => {
    const before = await takeSnapshot(hostTarget(undefined));
    const named = new Set(fs.readdirSync('/run/netns'));
    // The campaign hosts' names (test/helpers/reliability/daemon.ts); the whole host is compared below.
    const ours = /^rel/;
    const appeared = new Set<string>();
    let running = true;
    const watch = (async () => {
      while (running) {
        for (const n of fs.readdirSync('/run/netns')) if (!named.has(n) && ours.test(n)) appeared.add(`/run/netns/${n}`);
        const listed = await run(['ip', 'netns', 'list']);
        for (const line of listed.stdout.split('\n')) {
          const n = line.split(' ')[0];
          if (n && !named.has(n) && ours.test(n)) appeared.add(`ip netns list: ${n}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const r = await soak(['--requests', '40', '--kills', '3', '--hosts', '1', '--only', 'fuzz,kill', '--seed', '1']);
    running = false;
    await watch;
    const json = /== soak figures ==\n([^]*?)\n(failure|verdict)/.exec(r.out)?.[1];
    expect(json, r.out.slice(-3000)).toBeDefined();
    const fig = JSON.parse(json!) as Record<string, number> & { killOutcomes: Record<string, number> };
    // It did work inside: requests answered, kills and restarts, objects made (2xx) and removed.
    expect(fig.fuzzedRequests).toBeGreaterThanOrEqual(40);
    expect(fig.killIterations).toBe(3);
    expect(fig.killOutcomes['2xx']).toBeGreaterThan(0);
    expect([fig.ownNamespaceChanges, fig.leftAfterClear, fig.deaths]).toEqual([0, 0, 0]);
    expect(r.out).toMatch(/verdict: FAIL \(fewer than 10000 fuzzed requests; fewer than 1000 kill -9 iterations\)/);
    expect([...appeared]).toEqual([]);
    expect(diffSnapshots(before, await takeSnapshot(hostTarget(undefined)))).toEqual([]);
  });
});
