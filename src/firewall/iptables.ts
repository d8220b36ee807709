// The iptables backend: rules in the project's own chains, changed with `iptables-restore
// --noflush` one table at a time (a failed table is undone with the ones before it), removed by
// reading iptables-save and deleting exactly the tagged lines. IPv6 goes through ip6tables.
import { CnmkitError, TeardownError } from '../errors.js';
import { enableRouteLocalnet, Serial } from './common.js';
import { toolError, type ToolRunner } from './exec.js';
import {
  CHAINS,
  HEADS,
  USER_CHAIN,
  inverse,
  parseSave,
  renderMapping,
  renderNetwork,
  tagged,
  type Family,
  type RuleLine,
  type SavedRule,
  type SavedTable,
  type Table,
} from './iptables-rules.js';
import type { FirewallBackend, FirewallLogger, FirewallNetwork, PortMapping } from './types.js';
import { STRUCT_TAG, familyOf, networkTag, parseTag, portTag, validateMappings, validateNetwork, validateOwner, validateOwners, type ParsedTag } from './validate.js';

/** Which iptables binaries: the system's default (`iptables`), or a named variant. */
export type IptablesVariant = 'iptables' | 'iptables-nft' | 'iptables-legacy';

const ORDER: [Family, Table][] = [
  [4, 'filter'],
  [4, 'nat'],
  [6, 'filter'],
  [6, 'nat'],
];

type Saved = Map<string, SavedTable>;

interface TaggedRule {
  family: Family;
  table: Table;
  comment: string;
  tag: ParsedTag;
  /** The iptables-restore line that deletes this rule. */
  line: string;
}

export class IptablesBackend implements FirewallBackend {
  readonly name = 'iptables';
  private readonly serial = new Serial();
  private v6 = true;
  private ready = false;

  constructor(
    private readonly runner: ToolRunner,
    private readonly log: FirewallLogger,
    private readonly variant: IptablesVariant = 'iptables',
  ) {}

  private tool(family: Family, what: '-save' | '-restore' | ''): string {
    return `${family === 4 ? this.variant : this.variant.replace(/^iptables/, 'ip6tables')}${what}`;
  }

  private families(): Family[] {
    return this.v6 ? [4, 6] : [4];
  }

  private async save(family: Family): Promise<Saved> {
    return parseSave(await this.runner.check([this.tool(family, '-save')]));
  }

  private async restore(family: Family, table: Table, lines: string[]): Promise<void> {
    const cmd = [this.tool(family, '-restore'), '--noflush', '--wait=10'];
    const r = await this.runner.run(cmd, `*${table}\n${lines.join('\n')}\nCOMMIT\n`);
    if (r.code !== 0) throw toolError(cmd, r);
  }

  /** Applies lines table by table; when one table fails, the tables already changed are undone. */
  private async apply(lines: RuleLine[]): Promise<void> {
    const done: RuleLine[][] = [];
    for (const [family, table] of ORDER) {
      const group = lines.filter((l) => l.family === family && l.table === table);
      if (group.length === 0) continue;
      try {
        await this.restore(family, table, group.map((l) => l.text));
        done.push(group);
      } catch (err) {
        await this.undo(done, err);
        throw err;
      }
    }
  }

  private async undo(done: RuleLine[][], cause: unknown): Promise<void> {
    for (const group of done.reverse()) {
      const back = group.map(inverse).reverse();
      const first = back[0] as RuleLine;
      await this.restore(first.family, first.table, back.map((l) => l.text)).catch((err: unknown) => {
        this.log.error({ err, cause, family: first.family, table: first.table }, 'firewall: undo of a partly applied iptables batch failed');
      });
    }
  }

  /** Every saved rule that carries an owner tag, in every family and table. */
  private async scan(): Promise<TaggedRule[]> {
    const out: TaggedRule[] = [];
    for (const family of this.families()) {
      const saved = await this.save(family);
      for (const table of ['filter', 'nat'] as const) {
        for (const r of saved.get(table)?.rules ?? []) {
          const tag = r.comment === undefined ? undefined : parseTag(r.comment);
          if (tag) out.push({ family, table, comment: r.comment as string, tag, line: `-D ${r.chain} ${r.rest}` });
        }
      }
    }
    return out;
  }

  /** `-D` lines for every tagged rule the predicate selects. */
  private async deletions(select: (r: TaggedRule) => boolean): Promise<RuleLine[]> {
    return (await this.scan()).filter(select).map((r) => ({ family: r.family, table: r.table, text: r.line }));
  }

  init(): Promise<void> {
    return this.serial.run(() => this.initNow());
  }

  private async initNow(): Promise<void> {
    const version = (await this.runner.check([this.tool(4, ''), '--version'])).trim();
    this.log.info({ backend: 'iptables', version, netns: this.runner.netnsPath ?? 'host' }, `firewall: using ${version}`);
    for (const family of [4, 6] as const) {
      let saved: Saved;
      try {
        saved = await this.save(family);
      } catch (err) {
        if (family === 4) throw err;
        this.v6 = false;
        this.log.warn({ err }, 'firewall: ip6tables does not work here; IPv6 rules are disabled');
        continue;
      }
      await this.apply(initLines(family, saved));
    }
    this.ready = true;
  }

  private async ensureReady(): Promise<void> {
    if (!this.ready) await this.initNow();
  }

  async addNetwork(net: FirewallNetwork): Promise<void> {
    const valid = validateNetwork(net);
    return this.serial.run(async () => {
      await this.ensureReady();
      if (valid.subnets6.length > 0 && !this.v6) throw new CnmkitError('ERR_FIREWALL_NO_IPV6', 'unavailable', `network ${valid.id}: ip6tables is not available`);
      const tag = networkTag(valid.id);
      const old = await this.deletions((r) => r.comment === tag);
      await this.apply([...old, ...renderNetwork(valid)]);
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
      if (!this.v6 && valid.some((m) => familyOf(m.containerIP) === 6)) throw new CnmkitError('ERR_FIREWALL_NO_IPV6', 'unavailable', 'IPv6 port mapping: ip6tables is not available');
      const tags = new Set(valid.map(portTag));
      const old = await this.deletions((r) => tags.has(r.comment));
      const undoLocalnet = await enableRouteLocalnet(this.runner, valid);
      try {
        await this.apply([...old, ...valid.flatMap(renderMapping)]);
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
    return this.serial.run(async () => this.apply(await this.deletions(select)));
  }

  listOwners(): Promise<Set<string>> {
    return this.serial.run(async () => new Set((await this.scan()).map((r) => r.tag.owner)));
  }

  reconcile(validOwners: Set<string>): Promise<string[]> {
    return this.serial.run(async () => {
      const stale = (await this.scan()).filter((r) => !validOwners.has(r.tag.owner));
      await this.apply(stale.map((r) => ({ family: r.family, table: r.table, text: r.line })));
      const owners = [...new Set(stale.map((r) => r.tag.owner))];
      if (owners.length > 0) this.log.info({ owners }, 'firewall: removed rules nothing owns');
      return owners;
    });
  }

  flushAll(): Promise<void> {
    return this.serial.run(async () => {
      const errors: unknown[] = [];
      for (const family of this.families()) {
        const saved = await this.save(family);
        for (const table of ['filter', 'nat'] as const) {
          const lines = flushLines(saved.get(table));
          if (lines.length > 0) await this.restore(family, table, lines).catch((err: unknown) => errors.push(err));
        }
      }
      this.ready = false;
      if (errors.length > 0) throw new TeardownError(errors, 'firewall flush');
      this.log.info({ backend: 'iptables' }, 'firewall: all project rules and chains removed (user chain kept)');
    });
  }
}

/** Lines that create missing chains and put the project's jumps at the head of built-in chains. */
export function initLines(family: Family, saved: Saved): RuleLine[] {
  const out: RuleLine[] = [];
  for (const table of ['filter', 'nat'] as const) {
    const have = saved.get(table)?.chains ?? new Set<string>();
    for (const chain of CHAINS[table]) if (!have.has(chain)) out.push({ family, table, text: `-N ${chain}` });
  }
  for (const head of HEADS) {
    const rules = (saved.get(head.table)?.rules ?? []).filter((r) => r.chain === head.chain);
    if (headInPlace(rules, head.rules)) continue;
    for (const r of rules) if (r.comment === STRUCT_TAG) out.push({ family, table: head.table, text: `-D ${head.chain} ${r.rest}` });
    head.rules.forEach((rule, i) => out.push({ family, table: head.table, text: `-I ${head.chain} ${i + 1} ${tagged(rule, STRUCT_TAG)}` }));
  }
  return out;
}

function target(spec: string): string | undefined {
  return / -j (\S+)/.exec(` ${spec}`)?.[1];
}

/** True when the chain starts with exactly the project's jumps, in order, and has no others. */
function headInPlace(rules: SavedRule[], wanted: string[]): boolean {
  const ours = rules.filter((r) => r.comment === STRUCT_TAG);
  if (ours.length !== wanted.length) return false;
  return wanted.every((spec, i) => rules[i]?.comment === STRUCT_TAG && target(rules[i].rest) === target(spec));
}

/** Lines that remove the jumps into the project's chains, then those chains but the user's. */
export function flushLines(saved: SavedTable | undefined): string[] {
  if (!saved) return [];
  const ours = new Set<string>([...CHAINS.filter, ...CHAINS.nat]);
  const jumps = saved.rules.filter((r) => r.comment === STRUCT_TAG && !ours.has(r.chain)).map((r) => `-D ${r.chain} ${r.rest}`);
  const chains = [...saved.chains].filter((c) => ours.has(c) && c !== USER_CHAIN);
  return [...jumps, ...chains.map((c) => `-F ${c}`), ...chains.map((c) => `-X ${c}`)];
}
