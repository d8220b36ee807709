// The iptables backend: rules in the project's own chains, changed with `iptables-restore
// --noflush` one table at a time (a failed table is undone with the ones before it), removed by
// reading iptables-save and deleting exactly the tagged lines. IPv6 goes through ip6tables.
import { CnmkitError, TeardownError } from '../errors.js';
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
import type { FirewallLogger, FirewallNetwork, PortMapping } from './types.js';
import { TaggedRulesBackend, type TaggedRule } from './tagged.js';
import { STRUCT_TAG, parseTag } from './validate.js';
import { familyOf } from '../ip/index.js';

/** Which iptables binaries: the system's default (`iptables`), or a named variant. */
export type IptablesVariant = 'iptables' | 'iptables-nft' | 'iptables-legacy';

const ORDER: [Family, Table][] = [
  [4, 'filter'],
  [4, 'nat'],
  [6, 'filter'],
  [6, 'nat'],
];

type Saved = Map<string, SavedTable>;

interface IptRule extends TaggedRule {
  family: Family;
  table: Table;
  /** The iptables-restore line that deletes this rule. */
  line: string;
}

export class IptablesBackend extends TaggedRulesBackend<IptRule, RuleLine> {
  readonly name = 'iptables';
  private v6 = true;

  constructor(
    runner: ToolRunner,
    log: FirewallLogger,
    private readonly variant: IptablesVariant = 'iptables',
  ) {
    super(runner, log);
  }

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
  protected async apply(lines: RuleLine[]): Promise<void> {
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
  protected async scan(): Promise<IptRule[]> {
    const out: IptRule[] = [];
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

  protected deletion(r: IptRule): RuleLine {
    return { family: r.family, table: r.table, text: r.line };
  }

  protected renderNetwork(net: FirewallNetwork): RuleLine[] {
    return renderNetwork(net);
  }

  protected renderMapping(m: PortMapping): RuleLine[] {
    return renderMapping(m);
  }

  protected override checkNetwork(net: FirewallNetwork): void {
    if (net.subnets6.length > 0 && !this.v6) throw new CnmkitError('ERR_FIREWALL_NO_IPV6', 'unavailable', `network ${net.id}: ip6tables is not available`);
  }

  protected override checkMappings(mappings: PortMapping[]): void {
    if (!this.v6 && mappings.some((m) => familyOf(m.containerIP) === 6)) throw new CnmkitError('ERR_FIREWALL_NO_IPV6', 'unavailable', 'IPv6 port mapping: ip6tables is not available');
  }

  protected async initNow(): Promise<void> {
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

  protected async flushNow(): Promise<void> {
    const errors: unknown[] = [];
    for (const family of this.families()) {
      const saved = await this.save(family);
      for (const table of ['filter', 'nat'] as const) {
        const lines = flushLines(saved.get(table));
        if (lines.length > 0) await this.restore(family, table, lines).catch((err: unknown) => errors.push(err));
      }
    }
    if (errors.length > 0) throw new TeardownError(errors, 'firewall flush');
    this.log.info({ backend: 'iptables' }, 'firewall: all project rules and chains removed (user chain kept)');
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
