// The nftables backend: one table of its own (`inet cnmkit`, filter and NAT for both families),
// every change one `nft -f -` transaction, rules removed by the handles `nft -j -a` reports.
import { enableRouteLocalnet, Serial } from './common.js';
import { toolError, type ToolRunner } from './exec.js';
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
import type { FirewallBackend, FirewallLogger, FirewallNetwork, PortMapping } from './types.js';
import { networkTag, parseTag, portTag, validateMappings, validateNetwork, validateOwner, validateOwners, type ParsedTag } from './validate.js';

interface TaggedRule extends ListedRule {
  comment: string;
  tag: ParsedTag;
}

export class NftablesBackend implements FirewallBackend {
  readonly name = 'nftables';
  private readonly serial = new Serial();
  private ready = false;

  constructor(
    private readonly runner: ToolRunner,
    private readonly log: FirewallLogger,
  ) {}

  /** The table as the kernel has it; undefined when it does not exist. */
  private async list(): Promise<Listing | undefined> {
    const cmd = ['nft', '-j', '-a', 'list', 'table', ...TABLE.split(' ')];
    const r = await this.runner.run(cmd);
    if (r.code === 0) return parseListing(r.stdout);
    if (/No such file or directory/.test(r.stderr)) return undefined;
    throw toolError(cmd, r);
  }

  /** Runs the commands as one transaction: all of them happen, or none. */
  private async transact(commands: string[]): Promise<void> {
    if (commands.length === 0) return;
    const cmd = ['nft', '-f', '-'];
    const r = await this.runner.run(cmd, `${commands.join('\n')}\n`);
    if (r.code !== 0) throw toolError(cmd, r);
  }

  private async tagged(): Promise<TaggedRule[]> {
    const out: TaggedRule[] = [];
    for (const r of (await this.list())?.rules ?? []) {
      const tag = r.comment === undefined ? undefined : parseTag(r.comment);
      if (tag) out.push({ ...r, comment: r.comment as string, tag });
    }
    return out;
  }

  private async deletions(select: (r: TaggedRule) => boolean): Promise<string[]> {
    return (await this.tagged()).filter(select).map(deleteRule);
  }

  init(): Promise<void> {
    return this.serial.run(() => this.initNow());
  }

  private async initNow(): Promise<void> {
    const version = (await this.runner.check(['nft', '--version'])).trim();
    await this.transact(renderInit(await this.list()));
    this.ready = true;
    this.log.info({ backend: 'nftables', version, table: TABLE, netns: this.runner.netnsPath ?? 'host' }, `firewall: using ${version}, table ${TABLE}`);
  }

  private async ensureReady(): Promise<void> {
    if (!this.ready) await this.initNow();
  }

  async addNetwork(net: FirewallNetwork): Promise<void> {
    const valid = validateNetwork(net);
    return this.serial.run(async () => {
      await this.ensureReady();
      const tag = networkTag(valid.id);
      const old = await this.deletions((r) => r.comment === tag);
      await this.transact([...old, ...renderNetwork(valid)]);
      this.log.debug({ network: valid.id, bridge: valid.bridge }, 'firewall: network rules installed');
    });
  }

  async removeNetwork(id: string): Promise<void> {
    const owner = validateOwner(id);
    return this.removeWhere((r) => r.tag.owner === owner && !r.tag.port);
  }

  async addPorts(mappings: PortMapping[]): Promise<void> {
    const valid = validateMappings(mappings);
    return this.serial.run(async () => {
      if (valid.length === 0) return;
      await this.ensureReady();
      const tags = new Set(valid.map(portTag));
      const old = await this.deletions((r) => tags.has(r.comment));
      const undoLocalnet = await enableRouteLocalnet(this.runner, valid);
      try {
        await this.transact([...old, ...valid.flatMap(renderMapping)]);
      } catch (err) {
        await undoLocalnet().catch(() => undefined);
        throw err;
      }
    });
  }

  async removePorts(ids: string[]): Promise<void> {
    const owners = new Set(validateOwners(ids, 'ids'));
    return this.removeWhere((r) => r.tag.port && owners.has(r.tag.owner));
  }

  async removeOwner(owner: string): Promise<void> {
    const valid = validateOwner(owner, 'owner');
    return this.removeWhere((r) => r.tag.owner === valid);
  }

  private removeWhere(select: (r: TaggedRule) => boolean): Promise<void> {
    return this.serial.run(async () => this.transact(await this.deletions(select)));
  }

  listOwners(): Promise<Set<string>> {
    return this.serial.run(async () => new Set((await this.tagged()).map((r) => r.tag.owner)));
  }

  reconcile(validOwners: Set<string>): Promise<string[]> {
    return this.serial.run(async () => {
      const stale = (await this.tagged()).filter((r) => !validOwners.has(r.tag.owner));
      await this.transact(stale.map(deleteRule));
      const owners = [...new Set(stale.map((r) => r.tag.owner))];
      if (owners.length > 0) this.log.info({ owners }, 'firewall: removed rules nothing owns');
      return owners;
    });
  }

  flushAll(): Promise<void> {
    return this.serial.run(async () => {
      const listed = await this.list();
      if (listed) await this.transact(renderFlush(listed));
      this.ready = false;
      this.log.info({ backend: 'nftables' }, `firewall: all project chains removed from ${TABLE} (user chain kept)`);
    });
  }
}
