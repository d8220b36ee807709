// The README's multi-host example ("Overlay networks"), its commands read from the README itself
// and run on two simulated hosts: etcd on the underlay at the address the README names, a daemon
// on each with the README's flags, then the create, the server on A, the client on B and the
// inspect, each checked for what the README says it does.
// Limits: the harness starts etcd and the daemons (checked to be what the README's lines ask for,
// plus the harness's own test flags: lease TTL, pool, sockets, state dirs); the server's sandbox
// gets a unique name instead of `a` (named sandboxes are machine-wide under /run/netns), and the
// server serves a page written for the test.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { SimCluster, simCli, UNDERLAY_IP, waitFor, type SimHost } from '../helpers/cluster.js';
import { CLI } from '../helpers/daemon.js';
import { uniqueName } from '../helpers/netns.js';
import { run } from '../helpers/exec.js';

const README = fs.readFileSync(path.join(import.meta.dirname, '../../README.md'), 'utf8');

/** The commands of the README's multi-host example: [words, host comment] per line. */
function exampleLines(): { argv: string[]; where: string }[] {
  const section = README.slice(README.indexOf('### Overlay networks'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  return block.split('\n').filter((l) => l.trim() !== '').map((l) => {
    const [cmd, where = ''] = l.split(/\s+#\s+/);
    return { argv: cmd!.trim().split(/\s+/), where };
  });
}

/** The CLI against host h's daemon, --socket right after the command's verb (run and exec pass what follows CMD on). */
function cliOn(h: SimHost, [verb, ...rest]: string[], opts: { cwd?: string } = {}): ChildProcess {
  return spawn(process.execPath, [CLI, verb!, '--socket', h.daemon.socket, ...rest], { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
}

const runOn = (h: SimHost, argv: string[]) => run([process.execPath, CLI, argv[0]!, '--socket', h.daemon.socket, ...argv.slice(1)]);

describeRoot('README: the multi-host overlay example', () => {
  let sim: SimCluster;
  simSuite({ hosts: 2, firewallBackend: 'nftables' }, [], (s) => {
    sim = s;
  });

  it('runs as written: the server on A answers the client on B by its overlay address; inspect shows scope global, VNI and hosts', async () => {
    const lines = exampleLines();
    const [etcdLine, daemonLine, create, server, client, inspect] = lines;
    // etcd and the daemons: what the harness started is what these lines ask for.
    expect(etcdLine!.argv).toEqual(['etcd', '--listen-client-urls', `http://${UNDERLAY_IP}:2379`, '--advertise-client-urls', `http://${UNDERLAY_IP}:2379`]);
    expect(daemonLine!.argv).toEqual(['bin/cnmkit', 'daemon', '--cluster-store', `etcd://${UNDERLAY_IP}:2379`, '--advertise-addr', 'eth0']);
    expect(daemonLine!.where).toMatch(/host A and on host B/);
    const [a, b] = sim.hosts as [SimHost, SimHost];
    const cli = (argv: string[]) => argv.slice(1);

    expect(create!.where).toMatch(/^on A/);
    await simCli(a, cli(create!.argv));

    expect(server!.where).toBe('on A');
    const name = uniqueName('a');
    const serverArgs = cli(server!.argv).map((w, i, all) => (all[i - 1] === '--name' ? name : w));
    const www = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-readme-www-'));
    fs.writeFileSync(path.join(www, 'index.html'), 'hello from a\n');
    let httpd: ChildProcess | undefined;
    try {
      httpd = cliOn(a, serverArgs, { cwd: www });
      let err = '';
      httpd.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      // Until the server listens in its sandbox (`-p 80` is httpd's own flag here: its port, after CMD).
      await waitFor('the server listening in its sandbox', async () => {
        if (httpd!.exitCode !== null) throw new Error(`the server exited ${httpd!.exitCode}: ${err}`);
        const r = await runOn(a, ['exec', name, 'ss', '-Hltn', 'sport = :80']);
        return r.stdout.trim() !== '' || undefined;
      }, 20_000);

      expect(client!.where).toMatch(/^on B/);
      const page = await runOn(b, cli(client!.argv));
      expect(page.code, page.stderr).toBe(0);
      expect(page.stdout).toBe('hello from a\n');

      const [net] = JSON.parse(await simCli(b, [...cli(inspect!.argv), '--format', 'json'])) as { scope: string; global: { vni: number; port: number; hosts: unknown[] } }[];
      expect(net!.scope).toBe('global');
      expect(net!.global.vni).toBeGreaterThanOrEqual(4096);
      expect(net!.global.port).toBe(4789);
      expect(net!.global.hosts.map((h) => JSON.stringify(h)).join(' ')).toContain(a.ip);
    } finally {
      if (httpd && httpd.exitCode === null) {
        const exited = new Promise((r) => httpd!.once('exit', r));
        httpd.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(www, { recursive: true, force: true });
    }
    await waitFor("the server's sandbox removed", async () => (JSON.parse(await simCli(a, ['sandbox', 'ls', '--format', 'json'])) as unknown[]).length === 0 || undefined, 10_000);
    await simCli(a, ['network', 'rm', 'mesh']);
  });
});
