// Sandboxes against a real daemon in a throwaway "host" namespace: namespace paths that are not
// namespaces are refused without blocking the daemon, removal releases every handle into the
// namespace, and a named sandbox whose namespace something else still holds loses its links
// before its addresses go back to the pool. Checked with ip -j, nsids and real packets.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { makeNs, uniqueName, type TestNs } from '../helpers/netns.js';
import { CLI, TestDaemon } from '../helpers/daemon.js';
import { check, run } from '../helpers/exec.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The nsids the namespace `host` has given to other namespaces (`ip netns list-id`). */
async function nsids(host: TestNs): Promise<number[]> {
  return (await host.ipJson<{ nsid: number }[]>(['netns', 'list-id'])).map((e) => e.nsid);
}

/** Namespace inodes the process holds open as files (readlink of /proc/PID/fd/* is net:[INODE]). */
function netnsFdsOf(pid: number): number[] {
  const out: number[] = [];
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^net:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.push(Number(m[1]));
    } catch {
      // The fd closed while we read the folder.
    }
  }
  return out;
}

describeRoot('sandbox namespaces and teardown', () => {
  let host: TestNs;
  let daemon: TestDaemon;
  let tmp: string;

  beforeEach(async () => {
    host = await makeNs('host');
    daemon = new TestDaemon(host);
    await daemon.start();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-sbtest-'));
  });
  afterEach(async () => {
    await daemon.cleanup();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('refuses a FIFO, a folder, a plain file and a mount namespace as a namespace path, without blocking the daemon', async () => {
    const fifo = path.join(tmp, 'fifo');
    await check(['mkfifo', fifo]);
    try {
      const r = await run([process.execPath, CLI, 'sandbox', 'create', '--netns', fifo, '--socket', daemon.socket], { timeoutMs: 5000 });
      expect(r.stderr).toMatch(/netns: .*fifo is not a network namespace/);
      expect(r.code).toBe(1);
    } finally {
      // A daemon blocked opening the FIFO for reading is released by a writer.
      try {
        fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      } catch {
        // ENXIO: nobody reads it, which is what should be.
      }
    }
    const file = path.join(tmp, 'file');
    fs.writeFileSync(file, 'x');
    for (const p of [tmp, file, '/proc/self/ns/mnt']) {
      const r = await daemon.cmd(['sandbox', 'create', '--netns', p]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/netns: .* is not a network namespace/);
    }
    const ls = await daemon.cmd(['sandbox', 'ls', '--format', 'json']);
    expect(ls.code).toBe(0);
    expect(JSON.parse(ls.stdout)).toEqual([]);
  });

  it('keeps no handle on a path sandbox\'s namespace after it is removed: the namespace dies with its last mount', async () => {
    const outside = await makeNs('path');
    const inode = fs.statSync(outside.path).ino;
    expect((await daemon.cmd(['network', 'create', '--subnet', '198.18.41.0/24', 'lab'])).code).toBe(0);
    expect((await daemon.cmd(['sandbox', 'create', '--name', 'p1', '--netns', outside.path])).code).toBe(0);
    expect((await daemon.cmd(['connect', 'lab', 'p1'])).code).toBe(0);
    const ids = await nsids(host);
    expect(ids).toHaveLength(1);
    expect((await daemon.cmd(['sandbox', 'rm', 'p1'])).code).toBe(0);
    expect(await outside.linkNames()).toEqual(['lo']);
    await outside.delete();
    // The host namespace's id for it goes when the kernel destroys the namespace.
    for (let i = 0; i < 40 && (await nsids(host)).length > 0; i++) await sleep(50);
    expect(await nsids(host)).toEqual([]);
    expect(netnsFdsOf(daemon.proc!.pid!)).not.toContain(inode);
  });

  it('at restart, makes a vanished interface of a joined sandbox again (same address and MAC), and removes an endpoint it cannot, releasing its address', async () => {
    expect((await daemon.cmd(['network', 'create', '--subnet', '198.18.52.0/24', '-o', 'com.docker.network.bridge.name=brrep0', 'lab'])).code).toBe(0);
    const names = [uniqueName('rep'), uniqueName('lost'), uniqueName('new')];
    for (const n of names) await daemon.sandbox(n);
    const [repaired, lost, fresh] = names as [string, string, string];
    expect((await daemon.cmd(['connect', 'lab', repaired, '--ip', '198.18.52.10'])).code).toBe(0);
    expect((await daemon.cmd(['connect', 'lab', lost, '--ip', '198.18.52.11'])).code).toBe(0);
    const eth0 = async (ns: string) => (JSON.parse(await check(['ip', '-n', ns, '-j', 'addr', 'show', 'eth0'])) as { address: string; addr_info: { local: string; prefixlen: number }[] }[])[0]!;
    const mac = (await eth0(repaired)).address;
    await daemon.stop('SIGKILL');
    await check(['ip', '-n', repaired, 'link', 'del', 'eth0']);
    await check(['ip', '-n', lost, 'link', 'del', 'eth0']);
    await check(['ip', '-n', lost, 'link', 'add', 'eth0', 'type', 'bridge']);
    await daemon.start();
    const again = await eth0(repaired);
    expect(again.address).toBe(mac);
    expect(again.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toContain('198.18.52.10/24');
    const routes = JSON.parse(await check(['ip', '-n', repaired, '-j', 'route', 'show', 'default'])) as { gateway: string }[];
    expect(routes[0]!.gateway).toBe('198.18.52.1');
    expect((await run(['ip', 'netns', 'exec', repaired, 'ping', '-c', '1', '-W', '1', '198.18.52.1'])).code).toBe(0);
    expect(daemon.log).toContain(`interface eth0 had vanished from sandbox ${repaired}: made again with 198.18.52.10/24`);
    const inspect = JSON.parse((await daemon.cmd(['sandbox', 'inspect', lost])).stdout) as { endpoints: unknown[] }[];
    expect(inspect[0]!.endpoints).toEqual([]);
    expect(daemon.log).toContain(`198.18.52.11/24 released (eth0 in sandbox ${lost} is another device now)`);
    const kept = JSON.parse(await check(['ip', '-n', lost, '-d', '-j', 'link', 'show', 'eth0'])) as { linkinfo: { info_kind: string } }[];
    expect(kept[0]!.linkinfo.info_kind).toBe('bridge');
    expect((await daemon.cmd(['connect', 'lab', fresh, '--ip', '198.18.52.11'])).code).toBe(0);
    expect(await host.ipJson(['link', 'show', 'master', 'brrep0'])).toHaveLength(2);
  });

  it('removes the links of named sandboxes whose namespace a process or another mount still holds, before their addresses can be taken again', async () => {
    expect((await daemon.cmd(['network', 'create', '--subnet', '198.18.42.0/24', '-o', 'com.docker.network.bridge.name=brheld0', 'lab'])).code).toBe(0);
    const sandbox = async (tag: string): Promise<string> => {
      return daemon.sandbox(uniqueName(tag));
    };
    const ports = async () => (await host.ipJson<{ ifname: string }[]>(['link', 'show', 'master', 'brheld0'])).map((l) => l.ifname);
    const peer = await sandbox('peer');
    expect((await daemon.cmd(['connect', 'lab', peer, '--ip', '198.18.42.2'])).code).toBe(0);
    const byProcess = await sandbox('held');
    const byMount = await sandbox('mount');
    expect((await daemon.cmd(['connect', 'lab', byProcess, '--ip', '198.18.42.10'])).code).toBe(0);
    expect((await daemon.cmd(['connect', 'lab', byMount, '--ip', '198.18.42.11'])).code).toBe(0);
    expect(await ports()).toHaveLength(3);
    const holder = spawn('nsenter', [`--net=/run/netns/${byProcess}`, 'sleep', '60'], { stdio: 'ignore' });
    const keep = path.join(tmp, 'keep');
    fs.writeFileSync(keep, '');
    await check(['mount', '--bind', `/run/netns/${byMount}`, keep]);
    try {
      const inode = fs.statSync(`/run/netns/${byProcess}`).ino;
      for (let i = 0; i < 100 && fs.statSync(`/proc/${holder.pid}/ns/net`).ino !== inode; i++) await sleep(20);
      expect((await daemon.cmd(['sandbox', 'rm', byProcess])).code).toBe(0);
      expect((await daemon.cmd(['sandbox', 'rm', byMount])).code).toBe(0);
      // Off the bridge at once, and gone from the namespaces that live on.
      expect(await ports()).toHaveLength(1);
      for (const ns of [`/proc/${holder.pid}/ns/net`, keep]) {
        const links = JSON.parse(await check(['nsenter', `--net=${ns}`, 'ip', '-j', 'link', 'show'])) as { ifname: string }[];
        expect(links.map((l) => l.ifname)).toEqual(['lo']);
      }
      const again = await sandbox('again');
      expect((await daemon.cmd(['connect', 'lab', again, '--ip', '198.18.42.10'])).code).toBe(0);
      expect((await run(['ip', 'netns', 'exec', peer, 'ping', '-c', '1', '-W', '1', '198.18.42.10'])).code).toBe(0);
      expect(await ports()).toHaveLength(2);
    } finally {
      holder.kill('SIGKILL');
      await run(['umount', keep]);
    }
  });
});
