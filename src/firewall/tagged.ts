// What both kernel backends do the same way: every rule carries its owner's tag, so adding a
// network or ports replaces the rules of that tag, removal deletes exactly the tagged rules, and
// reconcile deletes the tags nothing owns. A backend supplies how to read its tagged rules, how
// to apply a batch atomically, and how to render rules; this class owns the order of work.
import { SerialQueue } from '../core/steps.js';
import { enableRouteLocalnet } from './common.js';
import type { ToolRunner } from './exec.js';
import type { BackendName, FirewallBackend, FirewallLogger, FirewallNetwork, PortMapping } from './types.js';
import { networkTag, portTag, validateMappings, validateNetwork, validateOwner, validateOwners, type ParsedTag } from './validate.js';

export interface TaggedRule {
  comment: string;
  tag: ParsedTag;
}

export abstract class TaggedRulesBackend<R extends TaggedRule, Change> implements FirewallBackend {
  abstract readonly name: BackendName;
  protected readonly serial = new SerialQueue();
  protected ready = false;

  constructor(
    protected readonly runner: ToolRunner,
    protected readonly log: FirewallLogger,
  ) {}

  /** Every rule in the kernel that carries an owner tag. */
  protected abstract scan(): Promise<R[]>;
  /** Applies a batch of changes atomically (all or nothing). */
  protected abstract apply(changes: Change[]): Promise<void>;
  /** The change that deletes one scanned rule. */
  protected abstract deletion(rule: R): Change;
  protected abstract renderNetwork(net: FirewallNetwork): Change[];
  protected abstract renderMapping(m: PortMapping): Change[];
  /** Creates the project's chains or table and the jumps into them. */
  protected abstract initNow(): Promise<void>;
  /** Removes everything the project owns but the user chain. */
  protected abstract flushNow(): Promise<void>;
  /** Refuses what this backend cannot do (e.g. IPv6 without ip6tables); nothing changed yet. */
  protected checkNetwork(_net: FirewallNetwork): void {}
  protected checkMappings(_mappings: PortMapping[]): void {}

  init(): Promise<void> {
    return this.serial.run(() => this.initNow());
  }

  private async ensureReady(): Promise<void> {
    if (!this.ready) await this.initNow();
  }

  private async deletions(select: (r: R) => boolean): Promise<Change[]> {
    return (await this.scan()).filter(select).map((r) => this.deletion(r));
  }

  async addNetwork(net: FirewallNetwork): Promise<void> {
    const valid = validateNetwork(net);
    return this.serial.run(async () => {
      await this.ensureReady();
      this.checkNetwork(valid);
      const tag = networkTag(valid.id);
      const old = await this.deletions((r) => r.comment === tag);
      await this.apply([...old, ...this.renderNetwork(valid)]);
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
      this.checkMappings(valid);
      const tags = new Set(valid.map(portTag));
      const old = await this.deletions((r) => tags.has(r.comment));
      const undoLocalnet = await enableRouteLocalnet(this.runner, valid);
      try {
        await this.apply([...old, ...valid.flatMap((m) => this.renderMapping(m))]);
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

  private removeWhere(select: (r: R) => boolean): Promise<void> {
    return this.serial.run(async () => this.apply(await this.deletions(select)));
  }

  countNetworkRules(net: FirewallNetwork): Promise<{ expected: number; found: number }> {
    const valid = validateNetwork(net);
    return this.serial.run(async () => {
      const tag = networkTag(valid.id);
      const found = (await this.scan()).filter((r) => r.comment === tag).length;
      return { expected: this.renderNetwork(valid).length, found };
    });
  }

  listOwners(): Promise<Set<string>> {
    return this.serial.run(async () => new Set((await this.scan()).map((r) => r.tag.owner)));
  }

  reconcile(validOwners: Set<string>): Promise<string[]> {
    return this.serial.run(async () => {
      const stale = (await this.scan()).filter((r) => !validOwners.has(r.tag.owner));
      await this.apply(stale.map((r) => this.deletion(r)));
      const owners = [...new Set(stale.map((r) => r.tag.owner))];
      if (owners.length > 0) this.log.info({ owners }, 'firewall: removed rules nothing owns');
      return owners;
    });
  }

  flushAll(): Promise<void> {
    return this.serial.run(async () => {
      this.ready = false;
      await this.flushNow();
    });
  }
}
