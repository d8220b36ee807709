// Interface names inside a sandbox, for drivers whose link is born there with its final name and
// for the applier: the one asked for, PREFIX0 in a fresh sandbox, else the next free PREFIXn.
import { validateIfname } from '../netns/index.js';
import { listLinks, type NetlinkHandle, type NetlinkHandlePool } from '../netlink/index.js';
import type { SandboxRecord } from '../core/model.js';

/** The sandbox's next free PREFIXn (asks the kernel for its links). */
export async function nextIfname(h: NetlinkHandle, prefix: string): Promise<string> {
  const taken = new Set((await listLinks(h)).map((l) => l.name));
  for (let i = 0; ; i++) if (!taken.has(`${prefix}${i}`)) return `${prefix}${i}`;
}

/** The name a link born in sb gets; a fresh sandbox (only lo) is not asked. */
export async function ifnameInSandbox(pool: NetlinkHandlePool, sb: SandboxRecord, prefix: string, opts: { asked?: string; fresh: boolean }): Promise<string> {
  if (opts.asked !== undefined) return validateIfname(opts.asked, 'ifname');
  return opts.fresh ? `${prefix}0` : nextIfname(pool.get(sb.netnsPath), prefix);
}
