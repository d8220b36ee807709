// Self-test of the host-unchanged check (test/helpers/host-snapshot.ts): the snapshot code pointed
// at a throwaway namespace, temporary folders standing for /run/netns, /etc/netns and
// /run/docker/plugins, and a marker of its own, must report each kind of leak made there on
// purpose — and report nothing once the leak is undone. The real host is never touched.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { check, run } from '../helpers/exec.js';
import { diffSnapshots, takeSnapshot, type SnapshotTarget } from '../helpers/host-snapshot.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { describeRoot } from '../helpers/root.js';

let ns: TestNs;
let tmp: string;
let target: SnapshotTarget;
let marker: string;
const undos: (() => Promise<unknown>)[] = [];

/** Running (a zombie waiting for init to reap it counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function killAndWait(pid: number): Promise<void> {
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
}

/** Runs a shell line with the self-test's marker, as a test's worker would; returns what it prints. */
async function marked(script: string): Promise<string> {
  return check(['sh', '-c', script], { env: { ...process.env, CNMKIT_TEST_RUN: marker } });
}

interface Leak {
  what: string;
  /** Makes the leak; returns its undo. */
  make: () => Promise<() => Promise<unknown>>;
  /** What the difference must show. */
  shows: RegExp[];
  /** Run before the first snapshot: state that the leak needs but that is not the leak. */
  prepare?: () => Promise<unknown>;
  /** The leak cannot be undone inside its namespace (skip the "nothing once undone" half). */
  stays?: boolean;
}

const leaks: Leak[] = [
  {
    what: 'a sandbox namespace left in the namespace folder',
    make: async () => {
      const file = path.join(target.netnsDir, 'sb-0123456789ab');
      fs.writeFileSync(file, '');
      await check(['unshare', `--net=${file}`, 'true']);
      return async () => {
        await check(['umount', file]);
        fs.rmSync(file);
      };
    },
    shows: [/named namespaces \(.*\) changed:\n\s+\+ sb-0123456789ab file/],
  },
  {
    what: 'a sysctl changed in the namespace',
    make: async () => {
      await ns.sh(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
      return () => ns.sh(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
    },
    shows: [/net\.\* sysctls changed:\n[\s\S]*- net\.ipv4\.ip_forward = 0\n[\s\S]*\+ net\.ipv4\.ip_forward = 1/],
  },
  {
    what: 'a process of the run left running (orphaned, adopted by init)',
    make: async () => {
      const pid = Number((await marked('sleep 300 </dev/null >/dev/null 2>&1 & echo $!')).trim());
      // The shell's child may not have exec'd sleep yet (slow under load): until it has, /proc
      // shows it as the shell, or not at all while the exec holds it.
      const execd = (): boolean => { try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep\0'); } catch { return false; } };
      for (let i = 0; i < 250 && !execd(); i++) await new Promise((r) => setTimeout(r, 20));
      return () => killAndWait(pid);
    },
    shows: [/processes of this run changed:\n\s+\+ \d+ sleep 300/],
  },
  {
    what: 'a process with a scrubbed environment under a process of the run',
    make: async () => {
      const parent = spawn('setsid', ['sh', '-c', 'env -i sleep 301 & wait'], { stdio: 'ignore', env: { ...process.env, CNMKIT_TEST_RUN: marker } });
      // setsid forks when it is a group leader; either way the sleep is a grandchild or deeper.
      // Until env has exec'd it (slow under load), no process is `sleep 301` (5 s at most).
      const sleepers = async (): Promise<number[]> => (await run(['pgrep', '-f', '^sleep 301$'])).stdout.split('\n').filter(Boolean).map(Number);
      for (const deadline = Date.now() + 5000; (await sleepers()).length === 0 && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 20));
      return async () => {
        for (const pid of await sleepers()) await killAndWait(pid);
        parent.kill('SIGKILL');
      };
    },
    shows: [/processes of this run changed:\n(\s+\+ .*\n)*\s+\+ \d+ sleep 301/],
  },
  {
    what: 'a plugin socket left in the plugin folder',
    make: async () => {
      const file = path.join(target.pluginDir, 'leaky.sock');
      const server = net.createServer();
      await new Promise<void>((res) => server.listen(file, res));
      return async () => {
        await new Promise((res) => server.close(res));
        fs.rmSync(file, { force: true });
      };
    },
    shows: [/Docker plugins \(.*\) changed:\n\s+\+ leaky\.sock socket/],
  },
  {
    what: 'a namespace file left in /etc/netns',
    make: async () => {
      fs.mkdirSync(path.join(target.etcNetnsDir, 'sb-x'));
      fs.writeFileSync(path.join(target.etcNetnsDir, 'sb-x', 'resolv.conf'), 'nameserver 198.18.0.53\n');
      return async () => fs.rmSync(path.join(target.etcNetnsDir, 'sb-x'), { recursive: true });
    },
    shows: [/namespace files \(.*\) changed:\n\s+\+ sb-x dir\n\s+\+ sb-x\/resolv\.conf file/],
  },
  {
    what: 'a link and an address',
    make: async () => {
      await ns.sh(['ip', 'link', 'add', 'leak0', 'type', 'veth', 'peer', 'name', 'leak1']);
      await ns.sh(['ip', 'addr', 'add', '198.18.99.1/24', 'dev', 'leak0']);
      return () => ns.sh(['ip', 'link', 'del', 'leak0']);
    },
    shows: [/links changed:[\s\S]*"ifname": "leak0"/, /addrs changed:[\s\S]*"local": "198\.18\.99\.1"/],
  },
  {
    what: 'an iptables rule and an nftables table',
    make: async () => {
      await ns.sh(['iptables', '-A', 'INPUT', '-s', '198.18.99.9', '-j', 'DROP']);
      await ns.sh(['nft', 'add', 'table', 'inet', 'leaky']);
      return async () => {
        // iptables-nft keeps its table once made: the whole of it goes.
        await ns.sh(['nft', 'delete', 'table', 'ip', 'filter']);
        await ns.sh(['nft', 'delete', 'table', 'inet', 'leaky']);
      };
    },
    shows: [/iptables-save changed:[\s\S]*\+ -A INPUT -s 198\.18\.99\.9\/32 -j DROP/, /nft list ruleset changed:[\s\S]*\+ table inet leaky/],
  },
  {
    what: 'a legacy iptables rule',
    // A legacy table, once used in a namespace, stays: it is in use before the first snapshot.
    prepare: () => ns.sh(['iptables-legacy', '-S']),
    make: async () => {
      await ns.sh(['iptables-legacy', '-A', 'INPUT', '-s', '198.18.99.8', '-j', 'DROP']);
      return () => ns.sh(['iptables-legacy', '-D', 'INPUT', '-s', '198.18.99.8', '-j', 'DROP']);
    },
    shows: [/iptables-legacy-save changed:[\s\S]*\+ -A INPUT -s 198\.18\.99\.8\/32 -j DROP/],
  },
  {
    what: 'a legacy xtables table put in use',
    make: async () => {
      await ns.sh(['iptables-legacy', '-t', 'mangle', '-S']);
      return async () => undefined;
    },
    shows: [/legacy xtables tables changed:\n\s+\+ \/proc\/net\/ip_tables_names:mangle/],
    // It cannot be undone (a namespace keeps a legacy table once used): the namespace goes after the test.
    stays: true,
  },
];

describeRoot('the host-unchanged check', () => {
  beforeEach(async () => {
    ns = await makeNs('snap');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-snap-'));
    for (const d of ['netns', 'etc-netns', 'plugins']) fs.mkdirSync(path.join(tmp, d));
    marker = `selftest-${randomBytes(4).toString('hex')}`;
    target = { netns: ns.path, netnsDir: path.join(tmp, 'netns'), etcNetnsDir: path.join(tmp, 'etc-netns'), pluginDir: path.join(tmp, 'plugins'), runMarker: marker, self: process.pid };
  });
  afterEach(async () => {
    for (const undo of undos.splice(0).reverse()) await undo().catch(() => undefined);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('sees nothing when nothing changed, twice in a row', async () => {
    const a = await takeSnapshot(target);
    expect(diffSnapshots(a, await takeSnapshot(target))).toEqual([]);
    expect(Object.keys(a)).toEqual(expect.arrayContaining(['links', 'net.* sysctls', 'legacy xtables tables', 'processes of this run']));
  });

  it.each(leaks.map((l) => [l.what, l] as const))('reports %s, and nothing once it is undone (where it can be)', async (_, leak) => {
    await leak.prepare?.();
    const before = await takeSnapshot(target);
    const undo = await leak.make();
    undos.push(undo);
    const diff = diffSnapshots(before, await takeSnapshot(target)).join('\n');
    for (const shown of leak.shows) expect(diff).toMatch(shown);
    await undos.pop()!();
    if (!leak.stays) expect(diffSnapshots(before, await takeSnapshot(target))).toEqual([]);
  });
});
