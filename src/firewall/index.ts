// Picks the firewall backend once (auto: nftables when `nft` works in the namespace, else
// iptables) and logs the choice and why, and the absolute paths of the tools it will run (found
// once here, in system directories). The backend acts only in the namespace it is given.
import { InvalidArgumentError } from '../errors.js';
import { resolveTools, ToolRunner } from './exec.js';
import { IptablesBackend, type IptablesVariant } from './iptables.js';
import { NftablesBackend } from './nftables.js';
import { NoneBackend } from './none.js';
import type { BackendName, FirewallBackend, FirewallLogger } from './types.js';

export type { BackendName, FirewallBackend, FirewallLogger, FirewallNetwork, PortMapping, PortProto } from './types.js';
export type { IptablesVariant } from './iptables.js';
export { IptablesBackend } from './iptables.js';
export { NftablesBackend } from './nftables.js';
export { NoneBackend } from './none.js';

export interface FirewallOptions {
  backend: BackendName | 'auto';
  /** The namespace to act in (`nsenter --net=PATH`); the caller's own when absent. */
  netnsPath?: string;
  logger: FirewallLogger;
  /** iptables binaries to use: the system default, or a named variant. */
  iptablesVariant?: IptablesVariant;
}

const BACKENDS = ['auto', 'iptables', 'nftables', 'none'];
const VARIANTS = ['iptables', 'iptables-nft', 'iptables-legacy'];

/** Every tool a backend may run with this iptables variant. */
function toolNames(variant: string): string[] {
  const v6 = variant.replace(/^iptables/, 'ip6tables');
  return ['nsenter', 'sysctl', 'nft', ...[variant, v6].flatMap((t) => [t, `${t}-save`, `${t}-restore`])];
}

/** Why nft cannot be used here, or undefined when it works. */
async function nftProblem(runner: ToolRunner): Promise<string | undefined> {
  try {
    const r = await runner.run(['nft', 'list', 'tables']);
    return r.code === 0 ? undefined : `nft list tables exited ${r.code}: ${r.stderr.trim().split('\n')[0] ?? ''}`;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * True when iptables' FORWARD chain drops by default (as Docker's engine leaves it): a packet
 * must then be accepted by iptables itself, so cnmkit's rules have to live there too.
 */
async function iptablesForwardDrops(runner: ToolRunner, variant: string): Promise<boolean> {
  try {
    const r = await runner.run([variant, '-w', '-S', 'FORWARD']);
    return r.code === 0 && /^-P FORWARD DROP$/m.test(r.stdout);
  } catch {
    return false;
  }
}

export async function createFirewall(opts: FirewallOptions): Promise<FirewallBackend> {
  if (!BACKENDS.includes(opts.backend)) throw new InvalidArgumentError('backend', `${JSON.stringify(opts.backend)} is not one of ${BACKENDS.join(', ')}`);
  if (opts.netnsPath !== undefined && (typeof opts.netnsPath !== 'string' || !opts.netnsPath.startsWith('/')))
    throw new InvalidArgumentError('netnsPath', 'must be an absolute path to a network namespace');
  const variant = opts.iptablesVariant ?? 'iptables';
  if (!VARIANTS.includes(variant)) throw new InvalidArgumentError('iptablesVariant', `${JSON.stringify(variant)} is not one of ${VARIANTS.join(', ')}`);
  const log = opts.logger;
  const tools = resolveTools(toolNames(variant));
  log.info({ tools }, 'firewall tools');
  const runner = new ToolRunner(tools, opts.netnsPath);
  let name = opts.backend;
  let reason = 'configured';
  if (name === 'auto') {
    const problem = await nftProblem(runner);
    const dropper = problem === undefined ? await iptablesForwardDrops(runner, variant) : false;
    name = problem === undefined && !dropper ? 'nftables' : 'iptables';
    reason = problem !== undefined
      ? `auto: nft does not work here (${problem})`
      : dropper
        ? "auto: iptables' FORWARD policy is DROP (Docker's engine sets it), which nftables rules cannot override"
        : 'auto: nft works here';
  }
  log.info({ backend: name, reason, netns: opts.netnsPath ?? 'host' }, `firewall backend: ${name} (${reason})`);
  if (name === 'nftables') return new NftablesBackend(runner, log);
  if (name === 'iptables') return new IptablesBackend(runner, log, variant);
  return new NoneBackend(log);
}
