// Egress shaping of a link end with tc (spawned with an argument array inside the end's namespace):
// tbf for a rate alone; netem for delay, jitter and loss (with its own rate). The netlink package
// cannot encode a tbf or netem qdisc, hence tc. A kernel without sch_netem refuses netem: the error
// names the missing qdisc.
import { execFile, spawnSync } from 'node:child_process';
import { CnmkitError, InvalidArgumentError } from '../errors.js';
import type { LinkShaping } from '../core/model.js';

const RATE_RE = /^([0-9]+(?:\.[0-9]+)?)([kmgt]?)(bit|bps)$/;
const TIME_RE = /^[0-9]+(?:\.[0-9]+)?(?:us|ms|s)$/;
const LOSS_RE = /^[0-9]+(?:\.[0-9]+)?%$/;
const SCALE: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

/** Bytes per second of a tc rate such as 100mbit or 500kbps. */
export function rateBytes(rate: string, field = 'rate'): number {
  const m = RATE_RE.exec(rate);
  if (!m) throw new InvalidArgumentError(field, `${JSON.stringify(rate)} is not a rate such as 100mbit, 1gbit or 500kbps`);
  const n = Number(m[1]) * SCALE[m[2]!]!;
  return m[3] === 'bit' ? n / 8 : n;
}

/** Validates shaping before anything is made. */
export function checkShaping(s: LinkShaping): LinkShaping {
  if (s.rate !== undefined && rateBytes(s.rate) < 1000) throw new InvalidArgumentError('rate', `${s.rate} is below 8kbit`);
  for (const k of ['delay', 'jitter'] as const) {
    if (s[k] !== undefined && !TIME_RE.test(s[k]!)) throw new InvalidArgumentError(k, `${JSON.stringify(s[k])} is not a time such as 10ms`);
  }
  if (s.loss !== undefined && (!LOSS_RE.test(s.loss) || Number(s.loss.slice(0, -1)) > 100)) throw new InvalidArgumentError('loss', `${JSON.stringify(s.loss)} is not a percentage such as 1%`);
  if (s.jitter !== undefined && s.delay === undefined) throw new InvalidArgumentError('jitter', 'jitter needs a delay');
  return s;
}

export const needsNetem = (s: LinkShaping): boolean => s.delay !== undefined || s.loss !== undefined;

let netem: boolean | undefined;

/**
 * Whether this kernel has the netem qdisc: tried once on the loopback of a namespace made for the
 * try alone (it goes with the process). Equivalent to: `unshare --net tc qdisc add dev lo root netem delay 1ms`.
 */
export function netemAvailable(): boolean {
  netem ??= spawnSync('unshare', ['--net', 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
  return netem;
}

/** The tc arguments that shape dev as s asks; undefined when s asks nothing. */
export function tcArgs(dev: string, s: LinkShaping): string[] | undefined {
  if (needsNetem(s)) {
    return ['qdisc', 'replace', 'dev', dev, 'root', 'netem',
      ...(s.delay ? ['delay', s.delay, ...(s.jitter ? [s.jitter] : [])] : []), ...(s.loss ? ['loss', s.loss] : []), ...(s.rate ? ['rate', s.rate] : [])];
  }
  if (s.rate === undefined) return undefined;
  // A burst of 10 ms at the rate, at least 32 KiB so that a full-size frame always fits.
  const burst = Math.max(Math.ceil(rateBytes(s.rate) / 100), 32 * 1024);
  return ['qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', s.rate, 'burst', String(burst), 'latency', '50ms'];
}

function run(argv: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: 10_000 }, (err, _stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 127) : 0, stderr: String(stderr || (err?.message ?? '')) });
    });
  });
}

/**
 * Takes dev's shaping off (its root qdisc back to the default); one that has none is left so.
 * Equivalent to: `tc qdisc del dev DEV root`
 */
export async function unshape(nsPath: string, dev: string, link: string): Promise<void> {
  const args = ['qdisc', 'del', 'dev', dev, 'root'];
  const r = await run(nsPath ? ['nsenter', `--net=${nsPath}`, '--', 'tc', ...args] : ['tc', ...args]);
  if (r.code !== 0 && !/handle of zero|No such file|Invalid handle/i.test(r.stderr)) throw new CnmkitError('ERR_TC', 'internal', `link ${link}: tc ${args.join(' ')} failed: ${r.stderr.trim()}`);
}

/** Shapes dev inside the namespace at nsPath ('' = the daemon's own). Equivalent to: `tc qdisc replace dev DEV root tbf|netem …` */
export async function shape(nsPath: string, dev: string, s: LinkShaping, link: string): Promise<void> {
  const args = tcArgs(dev, s);
  if (!args) return;
  const argv = nsPath ? ['nsenter', `--net=${nsPath}`, '--', 'tc', ...args] : ['tc', ...args];
  const r = await run(argv);
  if (r.code === 0) return;
  if (needsNetem(s) && /unknown|not found|No such file/i.test(r.stderr)) {
    throw new CnmkitError('ERR_KERNEL_FEATURE', 'bad-request', `link ${link}: delay, jitter and loss need the netem qdisc (kernel module sch_netem), which this kernel does not have; rate alone works (tbf)`, { field: 'delay' });
  }
  throw new CnmkitError('ERR_TC', 'internal', `link ${link}: tc ${args.join(' ')} failed: ${r.stderr.trim()}`);
}
