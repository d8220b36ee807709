// The CLI end to end against a real daemon running in a throwaway namespace that stands for the
// host: sandboxes as real named namespaces, null/host networks, errors and exit codes, and a
// daemon killed with SIGKILL that restarts with nothing lost.
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { adoptNs, makeNs, uniqueName } from '../helpers/netns.js';
import { CLI, TestDaemon } from '../helpers/daemon.js';
import { check, run } from '../helpers/exec.js';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

let daemon: TestDaemon;

/** Namespaces of this test run (other runs may come and go meanwhile). */
async function netnsNames(): Promise<string[]> {
  const out = await check(['ip', '-j', 'netns', 'list']);
  const prefix = `ct${process.env.CNMKIT_TEST_RUN ?? 'local'}-`;
  return (out.trim() ? (JSON.parse(out) as { name: string }[]) : []).map((n) => n.name).filter((n) => n.startsWith(prefix));
}

describeRoot('cnmkit CLI against a daemon', () => {
  beforeEach(async () => {
    daemon = new TestDaemon(await makeNs('host'));
    await daemon.start();
  });
  afterEach(async () => {
    await daemon.cleanup();
  });

  it('creates, lists, inspects and removes a sandbox that ip netns sees, with lo up', async () => {
    const name = uniqueName('sb');
    adoptNs(name);
    const created = await daemon.cmd(['sandbox', 'create', '--name', name]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(await netnsNames()).toContain(name);
    const lo = JSON.parse(await check(['ip', '-n', name, '-j', 'link', 'show', 'lo'])) as { flags: string[] }[];
    expect(lo[0]!.flags).toContain('UP');
    const ls = JSON.parse((await daemon.cmd(['sandbox', 'ls', '--format', 'json'])).stdout) as { name: string; kind: string; netnsPath: string }[];
    expect(ls).toEqual([expect.objectContaining({ name, kind: 'named', netnsPath: `/run/netns/${name}` })]);
    const table = (await daemon.cmd(['sandbox', 'ls'])).stdout;
    expect(table).toMatch(/SANDBOX ID\s+NAME\s+KIND/);
    expect(table).toContain(name);
    const inspect = JSON.parse((await daemon.cmd(['sandbox', 'inspect', name])).stdout) as { name: string }[];
    expect(inspect[0]!.name).toBe(name);
    expect((await daemon.cmd(['sandbox', 'rm', name])).code).toBe(0);
    expect(await netnsNames()).not.toContain(name);
    const again = await daemon.cmd(['sandbox', 'rm', name]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/not found/);
  });

  it('has the predefined bridge, none and host networks, creates and removes null networks, and refuses to remove predefined ones', async () => {
    const ls = JSON.parse((await daemon.cmd(['network', 'ls', '--format', 'json'])).stdout) as { name: string; driver: string }[];
    expect(ls.map((n) => [n.name, n.driver]).sort()).toEqual([['bridge', 'bridge'], ['host', 'host'], ['none', 'null']]);
    const c = await daemon.cmd(['network', 'create', '--driver', 'null', 'lab0']);
    expect(c.code).toBe(0);
    expect(c.stdout.trim()).toMatch(/^[0-9a-f]{64}$/);
    const ins = JSON.parse((await daemon.cmd(['network', 'inspect', 'lab0'])).stdout) as { name: string; driver: string; id: string }[];
    expect(ins[0]).toMatchObject({ name: 'lab0', driver: 'null', id: c.stdout.trim() });
    const byPrefix = JSON.parse((await daemon.cmd(['network', 'inspect', c.stdout.trim().slice(0, 12)])).stdout) as { name: string }[];
    expect(byPrefix[0]!.name).toBe('lab0');
    // One missing among several: the others are still shown (as docker does), the missing one said, exit 1.
    const some = await daemon.cmd(['network', 'inspect', 'nosuchnet', 'lab0']);
    expect(some.code).toBe(1);
    expect((JSON.parse(some.stdout) as { name: string }[]).map((n) => n.name)).toEqual(['lab0']);
    expect(some.stderr).toMatch(/^Error: .*nosuchnet.*not found/m);
    const dup = await daemon.cmd(['network', 'create', '--driver', 'null', 'lab0']);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/already exists/);
    const rmNone = await daemon.cmd(['network', 'rm', 'none']);
    expect(rmNone.code).toBe(1);
    expect(rmNone.stderr).toMatch(/pre-defined/);
    const pruned = JSON.parse((await daemon.cmd(['network', 'prune', '--format', 'json'])).stdout) as { removed: string[] };
    expect(pruned.removed).toEqual(['lab0']);
  });

  it('names the field and the reason for bad input, changes nothing, and uses exit codes 1 and 2', async () => {
    const before = await netnsNames();
    const badName = await daemon.cmd(['sandbox', 'create', '--name', 'bad name']);
    expect(badName.code).toBe(1);
    expect(badName.stderr).toMatch(/^Error: name: /);
    const badDriver = await daemon.cmd(['network', 'create', '--driver', 'nope', 'x1']);
    expect(badDriver.code).toBe(1);
    expect(badDriver.stderr).toMatch(/driver: unknown driver "nope"/);
    const badOpt = await daemon.cmd(['network', 'create', '--driver', 'null', '-o', 'a=b', 'x2']);
    expect(badOpt.stderr).toMatch(/options\.a: the null driver takes no options/);
    const usage = await daemon.cmd(['network', 'create']);
    expect(usage.code).toBe(2);
    const unknownFlag = await daemon.cmd(['network', 'ls', '--bogus']);
    expect(unknownFlag.code).toBe(2);
    const ls = JSON.parse((await daemon.cmd(['network', 'ls', '--format', 'json'])).stdout) as unknown[];
    expect(ls).toHaveLength(3);
    expect(await netnsNames()).toEqual(before);
    const help = await run([process.execPath, CLI, 'network', 'create', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: cnmkit network create/);
  });

  it('runs a command in a new sandbox on the null network and removes it afterwards; exec reaches a kept one', async () => {
    const name = uniqueName('run');
    adoptNs(name);
    const r = await daemon.cmd(['run', '--name', name, '--network', 'none', '--', 'ip', '-j', 'link']);
    expect(r.code).toBe(0);
    const links = JSON.parse(r.stdout) as { ifname: string }[];
    expect(links.map((l) => l.ifname)).toEqual(['lo']);
    expect(await netnsNames()).not.toContain(name);
    const failing = await daemon.cmd(['run', '--network', 'none', '--', 'sh', '-c', 'exit 7']);
    expect(failing.code).toBe(7);
    const kept = uniqueName('keep');
    adoptNs(kept);
    expect((await daemon.cmd(['run', '--name', kept, '--keep', '--network', 'none', '--', 'true'])).code).toBe(0);
    const ex = await daemon.cmd(['exec', kept, '--', 'ip', '-j', 'addr', 'show', 'lo']);
    expect(ex.code).toBe(0);
    expect(ex.stdout).toContain('127.0.0.1');
    expect((await daemon.cmd(['sandbox', 'rm', kept])).code).toBe(0);
  });

  it('runs and execs in named sandboxes of a daemon whose --netns-dir is not /run/netns', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-netnsdir-'));
    const other = new TestDaemon(await makeNs('host2'), ['--netns-dir', dir]);
    try {
      await other.start();
      const name = uniqueName('nd');
      const created = JSON.parse((await other.cmd(['sandbox', 'create', '--name', name, '--format', 'json'])).stdout) as { netnsPath: string };
      expect(created.netnsPath).toBe(path.join(dir, name));
      // The daemon's namespace has its cnmkit0; the sandbox only lo.
      expect(await other.host.linkNames()).toContain('cnmkit0');
      const ex = await other.cmd(['exec', name, '--', 'ip', '-j', 'link', 'show']);
      expect(ex.stderr).toBe('');
      expect((JSON.parse(ex.stdout) as { ifname: string }[]).map((l) => l.ifname)).toEqual(['lo']);
      const r = await other.cmd(['run', '--network', 'none', '--', 'ip', '-j', 'link', 'show']);
      expect(r.code).toBe(0);
      expect((JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname)).toEqual(['lo']);
      expect((await other.cmd(['sandbox', 'rm', name])).code).toBe(0);
    } finally {
      await other.cleanup();
      await run(['umount', '--recursive', dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('adopts an existing namespace by path and by pid, and runs host sandboxes in the daemon\'s namespace', async () => {
    const other = await makeNs('adopt');
    await other.sh(['ip', 'link', 'add', 'marker0', 'type', 'bridge']);
    const byPath = await daemon.cmd(['sandbox', 'create', '--name', 'bypath', '--netns', other.path, '--format', 'json']);
    expect(JSON.parse(byPath.stdout)).toMatchObject({ kind: 'path', netnsPath: other.path });
    const seen = await daemon.cmd(['exec', 'bypath', '--', 'ip', '-j', 'link', 'show', 'marker0']);
    expect(seen.code).toBe(0);
    const sleeper = spawn('ip', ['netns', 'exec', other.name, 'sleep', '30'], { stdio: 'ignore' });
    try {
      // Until `ip netns exec` has entered the namespace, the pid's namespace is this process's (the
      // host's): adopted then, the sandbox would be the host. Waited for: the pid's namespace is other's.
      const want = `net:[${fs.statSync(other.path).ino}]`;
      const inOther = (): boolean => {
        try {
          return fs.readlinkSync(`/proc/${sleeper.pid}/ns/net`) === want;
        } catch {
          return false;
        }
      };
      for (const deadline = Date.now() + 5000; !inOther(); await new Promise((r) => setTimeout(r, 10))) {
        if (Date.now() > deadline) throw new Error('ip netns exec did not enter the namespace within 5 s');
      }
      const sleepPid = String(sleeper.pid);
      const byPid = await daemon.cmd(['sandbox', 'create', '--name', 'bypid', '--netns', sleepPid, '--format', 'json']);
      expect(JSON.parse(byPid.stdout)).toMatchObject({ kind: 'path', netnsPath: `/proc/${sleepPid}/ns/net` });
      expect((await daemon.cmd(['exec', 'bypid', '--', 'ip', 'link', 'show', 'marker0'])).code).toBe(0);
    } finally {
      sleeper.kill();
    }
    const missing = await daemon.cmd(['sandbox', 'create', '--netns', '/run/netns/does-not-exist']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/netns: no namespace at/);
    expect((await daemon.cmd(['sandbox', 'rm', 'bypath'])).code).toBe(0);
    expect((await other.linkNames())).toContain('marker0');
    await daemon.host.sh(['ip', 'link', 'add', 'hostmark0', 'type', 'bridge']);
    const hostRun = await daemon.cmd(['run', '--network', 'host', '--', 'ip', '-j', 'link', 'show', 'hostmark0']);
    expect(hostRun.code).toBe(0);
    expect(hostRun.stdout).toContain('hostmark0');
  });

  it('loses nothing when killed with SIGKILL and restarted', async () => {
    const name = uniqueName('kill');
    adoptNs(name);
    expect((await daemon.cmd(['sandbox', 'create', '--name', name])).code).toBe(0);
    expect((await daemon.cmd(['network', 'create', '-d', 'null', 'keepme'])).code).toBe(0);
    expect((await daemon.cmd(['connect', 'keepme', name])).code).toBe(0);
    await daemon.stop('SIGKILL');
    await daemon.start();
    const nets = JSON.parse((await daemon.cmd(['network', 'ls', '--format', 'json'])).stdout) as { name: string }[];
    expect(nets.map((n) => n.name).sort()).toEqual(['bridge', 'host', 'keepme', 'none']);
    const sbs = JSON.parse((await daemon.cmd(['sandbox', 'inspect', name])).stdout) as { endpoints: { networkId: string }[] }[];
    expect(sbs[0]!.endpoints).toHaveLength(1);
    expect(await netnsNames()).toContain(name);
    expect((await daemon.cmd(['disconnect', 'keepme', name])).code).toBe(0);
    expect((await daemon.cmd(['sandbox', 'rm', name])).code).toBe(0);
    expect(await netnsNames()).not.toContain(name);
  });

  it('reconciles at start: a sandbox whose namespace vanished while the daemon was down is dropped with its endpoints', async () => {
    const name = uniqueName('gone');
    adoptNs(name);
    expect((await daemon.cmd(['sandbox', 'create', '--name', name])).code).toBe(0);
    expect((await daemon.cmd(['connect', 'none', name])).code).toBe(0);
    await daemon.stop('SIGKILL');
    await check(['ip', 'netns', 'del', name]);
    await daemon.start();
    const sbs = JSON.parse((await daemon.cmd(['sandbox', 'ls', '--format', 'json'])).stdout) as unknown[];
    expect(sbs).toEqual([]);
    expect(daemon.log).toMatch(/namespace gone/);
  });
});
