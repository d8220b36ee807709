// The probes `lab check` sends from inside the nodes' namespaces. ICMP: one raw socket per source
// node, opened inside its namespace, and every echo of the matrix sent at once and collected on
// one thread (native icmpSweep): no process per ping. IPv6 targets, and an addon built without
// icmpSweep, fall back to this machine's ping: one shell per source node pings its targets in
// parallel (the script is fixed; addresses are its arguments, never part of it). TCP: nc -z.
import { spawn } from 'node:child_process';
import { isIPv4 } from 'node:net';
import { DAEMON_DEFAULTS } from '../defaults.js';
import { native, netnsExists, runInNetns } from '../netns/index.js';
import { mapLimit } from './limit.js';
import type { Prober } from './check.js';

const PING_ALL = 'for a do ( if o=$(ping -n -q -c 1 -W "$CNMKIT_WAIT" "$a" 2>&1); then echo "$a ok" $o; else echo "$a no"; fi ) & done; wait';

function run(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, ...env } });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', () => resolve({ code: 127, stdout }));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout }));
  });
}

const nsPath = (sandbox: string): string => `${DAEMON_DEFAULTS.netnsDir}/${sandbox}`;

/** ping(8) from inside sandbox to each address, in parallel. */
async function pingProcesses(sandbox: string, addresses: string[], timeoutMs: number): Promise<Array<number | undefined>> {
  if (addresses.length === 0) return [];
  const wait = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
  const r = await run(['nsenter', `--net=${nsPath(sandbox)}`, '--', 'sh', '-c', PING_ALL, 'sh', ...addresses], { CNMKIT_WAIT: wait });
  const rtt = new Map<string, number | undefined>();
  for (const line of r.stdout.split('\n')) {
    const [addr, verdict] = line.split(' ');
    if (!addr) continue;
    const m = / = [\d.]+\/([\d.]+)\//.exec(line);
    rtt.set(addr, verdict === 'ok' ? Number(m?.[1] ?? 0) : undefined);
  }
  return addresses.map((a) => rtt.get(a));
}

/** Every IPv4 echo of every job in one native sweep. */
function sweep(jobs: Array<{ sandbox: string; addresses: string[] }>, timeoutMs: number): Promise<Array<Array<number | undefined>>> {
  const fds = jobs.map((j) => runInNetns(nsPath(j.sandbox), () => native.icmpSocket!()));
  return new Promise((resolve, reject) => {
    native.icmpSweep!(jobs.map((j, i) => ({ fd: fds[i]!, targets: j.addresses })), timeoutMs, (err, rtts) => {
      for (const fd of fds) native.closeFd(fd);
      if (err) reject(err);
      else resolve(rtts.map((list) => list.map((ms) => (ms < 0 ? undefined : ms))));
    });
  });
}

export const prober: Prober = {
  async ping(jobs, timeoutMs) {
    if (!native.icmpSweep || !native.icmpSocket) return mapLimit(jobs, 8, (j) => pingProcesses(j.sandbox, j.addresses, timeoutMs));
    const v4 = jobs.map((j) => ({ sandbox: j.sandbox, addresses: j.addresses.filter((a) => isIPv4(a)) }));
    const fast = await sweep(v4, timeoutMs);
    const slow = await mapLimit(jobs, 8, (j) => pingProcesses(j.sandbox, j.addresses.filter((a) => !isIPv4(a)), timeoutMs));
    return jobs.map((j, i) => {
      let a = 0;
      let b = 0;
      return j.addresses.map((addr) => (isIPv4(addr) ? fast[i]![a++] : slow[i]![b++]));
    });
  },
  hasNamespace: (sandbox) => netnsExists(nsPath(sandbox)),
  async tcp(sandbox, address, port, timeoutMs) {
    const r = await run(['nsenter', `--net=${nsPath(sandbox)}`, '--', 'nc', '-z', '-w', String(Math.max(1, Math.ceil(timeoutMs / 1000))), address, String(port)]);
    return r.code === 0;
  },
};
