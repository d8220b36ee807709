// The nftables backend: one table of its own (`inet cnmkit`, filter and NAT for both families),
// every change one `nft -f -` transaction, rules removed by the handles `nft -j -a` reports.
import { toolError } from './exec.js';
import {
  TABLE,
  deleteRule,
  parseListing,
  renderFlush,
  renderInit,
  renderMapping,
  renderNetwork,
  type ListedRule,
  type Listing,
} from './nftables-rules.js';
import type { FirewallNetwork, PortMapping } from './types.js';
import { parseTag } from './validate.js';
import { TaggedRulesBackend, type TaggedRule } from './tagged.js';

type NftRule = ListedRule & TaggedRule;

export class NftablesBackend extends TaggedRulesBackend<NftRule, string> {
  readonly name = 'nftables';

  /** The table as the kernel has it; undefined when it does not exist. */
  private async list(): Promise<Listing | undefined> {
    const cmd = ['nft', '-j', '-a', 'list', 'table', ...TABLE.split(' ')];
    const r = await this.runner.run(cmd);
    if (r.code === 0) return parseListing(r.stdout);
    if (/No such file or directory/.test(r.stderr)) return undefined;
    throw toolError(cmd, r);
  }

  /** Runs the commands as one transaction: all of them happen, or none. */
  protected async apply(commands: string[]): Promise<void> {
    if (commands.length === 0) return;
    const cmd = ['nft', '-f', '-'];
    const r = await this.runner.run(cmd, `${commands.join('\n')}\n`);
    if (r.code !== 0) throw toolError(cmd, r);
  }

  protected async scan(): Promise<NftRule[]> {
    const out: NftRule[] = [];
    for (const r of (await this.list())?.rules ?? []) {
      const tag = r.comment === undefined ? undefined : parseTag(r.comment);
      if (tag) out.push({ ...r, comment: r.comment as string, tag });
    }
    return out;
  }

  protected deletion(rule: NftRule): string {
    return deleteRule(rule);
  }

  protected renderNetwork(net: FirewallNetwork): string[] {
    return renderNetwork(net);
  }

  protected renderMapping(m: PortMapping): string[] {
    return renderMapping(m);
  }

  protected async initNow(): Promise<void> {
    const version = (await this.runner.check(['nft', '--version'])).trim();
    await this.apply(renderInit(await this.list()));
    this.ready = true;
    this.log.info({ backend: 'nftables', version, table: TABLE, netns: this.runner.netnsPath ?? 'host' }, `firewall: using ${version}, table ${TABLE}`);
  }

  protected async flushNow(): Promise<void> {
    const listed = await this.list();
    if (listed) await this.apply(renderFlush(listed));
    this.log.info({ backend: 'nftables' }, `firewall: all project chains removed from ${TABLE} (user chain kept)`);
  }
}
