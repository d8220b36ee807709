// One daemon per network namespace: a second `cnmkit daemon` started where one runs (another
// --state-dir, socket and plugin folder) changes nothing on disk or in the kernel, whether its
// flags are bad (exit 2, naming the flag) or good (refused, naming the first daemon's pid and
// socket). A real daemon in a throwaway "host" namespace, checked with ip -j and a ping.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { CLI, SAFE_ADDRESSES, TestDaemon } from '../helpers/daemon.js';
import { run } from '../helpers/exec.js';

describeRoot('one daemon per network namespace', () => {
  let host: TestNs;
  let daemon: TestDaemon;

  beforeEach(async () => {
    host = await makeNs('host');
    daemon = new TestDaemon(host);
    await daemon.start();
  });
  afterEach(async () => {
    await daemon.cleanup();
  });

  it('a second daemon in the same namespace changes nothing: bad flags exit 2 naming the flag, good ones are refused naming the first', async () => {
    expect((await daemon.cmd(['network', 'create', '--subnet', '198.18.51.0/24', 'lab'])).code).toBe(0);
    const sb = await daemon.sandbox();
    expect((await daemon.cmd(['connect', 'lab', sb])).code).toBe(0);
    const links = async () => (await host.ipJson<{ ifname: string; ifindex: number }[]>(['link', 'show'])).map((l) => `${l.ifindex}:${l.ifname}`);
    const before = await links();
    expect(before.length).toBeGreaterThanOrEqual(4);
    const dir = path.join(daemon.dir, 'second');
    const second = (extra: string[]) => run(['nsenter', `--net=${host.path}`, '--', process.execPath, CLI, 'daemon', '--socket', path.join(dir, 's.sock'),
      '--state-dir', path.join(dir, 'state'), '--run-dir', path.join(dir, 'run'), '--plugin-dir', path.join(dir, 'plugins'), ...SAFE_ADDRESSES, ...extra], { timeoutMs: 30_000 });
    const bad: [string[], RegExp][] = [
      [['--bip', '198.18.300.1/24'], /--bip: /],
      [['--default-address-pool', 'base=198.18.0.0/99,size=24'], /--default-address-pool: /],
      [['--bridge-name', 'a-bridge-name-too-long'], /--bridge-name: /],
      [['--netns-dir', ''], /--netns-dir: /],
      [['--firewall-backend', 'pf'], /--firewall-backend: /],
      [['--ready-fd', '1'], /--ready-fd: expected a file descriptor number of 3 or more/],
      [['--ready-fd', '57'], /--ready-fd: file descriptor 57 is not open/],
    ];
    for (const [flags, message] of bad) {
      const r = await second(flags);
      expect(r.code, flags.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(fs.existsSync(dir), flags.join(' ')).toBe(false);
      expect(await links()).toEqual(before);
    }
    const refused = await second([]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`pid ${daemon.proc!.pid}`);
    expect(refused.stderr).toContain(daemon.socket);
    expect(fs.existsSync(path.join(dir, 'state'))).toBe(false);
    expect(await links()).toEqual(before);
    expect((await run(['ip', 'netns', 'exec', sb, 'ping', '-c', '1', '-W', '1', '198.18.51.1'])).code).toBe(0);
  });
});
