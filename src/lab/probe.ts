// The probes `lab check` sends, with this machine's tools inside the node's namespace (nsenter
// --net, argument arrays only): one shell per source node pings its targets in parallel (the
// script is fixed; the addresses are its arguments, never part of it), and nc -z for TCP.
import { spawn } from 'node:child_process';
import { DAEMON_DEFAULTS } from '../defaults.js';
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

export const processProber: Prober = {
  async ping(sandbox, addresses, timeoutMs) {
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
  },
  async tcp(sandbox, address, port, timeoutMs) {
    const r = await run(['nsenter', `--net=${nsPath(sandbox)}`, '--', 'nc', '-z', '-w', String(Math.max(1, Math.ceil(timeoutMs / 1000))), address, String(port)]);
    return r.code === 0;
  },
};
