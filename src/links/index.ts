// Point-to-point links between two sandboxes of one daemon: one veth pair made in one netlink
// request (each end born in its sandbox with its name, MAC and MTU), addresses, up, and shaping.
// Recorded before the kernel changes; a half-made link found at start is removed (reconcile), and
// deleting a sandbox removes its links first. Asked again: the same link is returned, its MTU and
// shaping changed in place when they differ, and a link whose veth is gone is made again.
// Limits: both ends on this daemon's machine.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { SandboxRecord } from '../core/model.js';
import { newId } from '../core/refs.js';
import { bestEffort, SerialQueue, withRollback } from '../core/steps.js';
import { addAddress, addVeth, deleteLink, parseCidr, peekLink, setLink, setLinkUp, type NetlinkHandlePool } from '../netlink/index.js';
import { ensureSysctl, runInNetns, validateIfname } from '../netns/index.js';
import type { Store } from '../store/index.js';
import type { LinkEndRecord, LinkRecord, LinkShaping } from '../core/model.js';
import { checkShaping, shape, unshape } from './shape.js';

export type { LinkRecord, LinkEndRecord, LinkShaping } from '../core/model.js';

export interface LinkEndRequest {
  sandbox: string;
  ifname: string;
  address?: string;
}

export interface CreateLinkRequest extends LinkShaping {
  name: string;
  ends: [LinkEndRequest, LinkEndRequest];
  mtu?: number;
  labels?: Record<string, string>;
}

export interface LinkDeps {
  store: Store;
  netlink: NetlinkHandlePool;
  /** Resolves a sandbox by name or id (the controller's lookup). */
  sandbox(ref: string): SandboxRecord;
  /** Whether the namespace at nsPath still exists. */
  exists(nsPath: string): boolean;
  logger: Logger;
}

/** Link names: a lab names a link by its ends, `r1:eth1--r2:eth1`. */
const LINK_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/;

function validateLinkName(name: unknown): string {
  if (typeof name !== 'string' || !LINK_NAME_RE.test(name)) {
    throw new InvalidArgumentError('name', `link name ${JSON.stringify(name)} must start with a letter or digit and hold only letters, digits, '_', '.', ':', '@' and '-', at most 128 characters`);
  }
  return name;
}

const VETH_MTU = 1500;

const randomMac = (): string => [0x02, ...randomBytes(5)].map((b) => b.toString(16).padStart(2, '0')).join(':');

function sameEnds(l: LinkRecord, req: CreateLinkRequest, ids: [string, string]): boolean {
  return l.ends.every((e, i) => e.sandboxId === ids[i] && e.ifname === req.ends[i]!.ifname && (e.address ?? '') === (req.ends[i]!.address ?? ''));
}

function sameSettings(l: LinkRecord, req: CreateLinkRequest): boolean {
  return (['rate', 'delay', 'jitter', 'loss'] as const).every((k) => l.shaping[k] === req[k]) && l.mtu === req.mtu;
}

export class LinkService {
  private readonly queue = new SerialQueue();
  constructor(private readonly deps: LinkDeps) {}

  list(): LinkRecord[] {
    return this.deps.store.links.list();
  }

  get(ref: string): LinkRecord {
    const l = this.deps.store.links.getByName(ref) ?? this.deps.store.links.get(ref);
    if (!l) throw new NotFoundError('link', ref);
    return l;
  }

  /**
   * Creates the link; the same request again returns the existing link (made again if its veth is
   * gone), and one that changes only its MTU or shaping changes them in place.
   */
  create(req: CreateLinkRequest): Promise<LinkRecord> {
    const name = validateLinkName(req.name);
    const shaping = checkShaping({ ...(req.rate ? { rate: req.rate } : {}), ...(req.delay ? { delay: req.delay } : {}), ...(req.jitter ? { jitter: req.jitter } : {}), ...(req.loss ? { loss: req.loss } : {}) });
    const sbs = req.ends.map((e) => this.deps.sandbox(e.sandbox)) as [SandboxRecord, SandboxRecord];
    req.ends.forEach((e, i) => {
      validateIfname(e.ifname, `ends[${i}].ifname`);
      if (e.address !== undefined) parseCidr(e.address, `ends[${i}].address`, { allowHost: true });
      if (sbs[i]!.kind === 'host') throw new InvalidArgumentError(`ends[${i}].sandbox`, `sandbox ${sbs[i]!.name} is the daemon's own namespace: a link joins two sandboxes`);
    });
    if (sbs[0].id === sbs[1].id && req.ends[0].ifname === req.ends[1].ifname) throw new InvalidArgumentError('ends', 'the two ends have the same sandbox and name');
    return this.queue.run(async () => {
      let existing = this.deps.store.links.getByName(name);
      // A link whose veth is gone (deleted behind the daemon's back) is made again.
      if (existing && !(await this.intact(existing))) {
        await this.teardown(existing);
        existing = undefined;
      }
      if (existing && !sameEnds(existing, req, [sbs[0].id, sbs[1].id])) throw new ConflictError(`link ${name} already exists with other ends or addresses`);
      if (existing) return sameSettings(existing, req) ? existing : this.resettle(existing, req, sbs, shaping);
      return this.make(name, req, sbs, shaping);
    });
  }

  /** Whether both ends of the link are there, each in its sandbox. */
  private async intact(l: LinkRecord): Promise<boolean> {
    for (const e of l.ends) {
      const sb = this.deps.store.sandboxes.get(e.sandboxId);
      if (!sb || !this.deps.exists(sb.netnsPath) || !(await peekLink(this.deps.netlink.get(sb.netnsPath), e.ifname))) return false;
    }
    return true;
  }

  /**
   * The link's MTU and shaping changed in place: the veth pair stays, with its addresses and the
   * routes through it. A shaping the kernel refuses on the first end changes nothing; on the
   * second, the first end gets its old shaping back.
   * Equivalent to: `ip -n SB link set IF mtu M; tc qdisc replace|del dev IF root …` on both ends.
   */
  private async resettle(l: LinkRecord, req: CreateLinkRequest, sbs: [SandboxRecord, SandboxRecord], shaping: LinkShaping): Promise<LinkRecord> {
    const reshape = (i: number, s: LinkShaping): Promise<void> =>
      (Object.keys(s).length > 0 ? shape(sbs[i]!.netnsPath, l.ends[i]!.ifname, s, l.name) : unshape(sbs[i]!.netnsPath, l.ends[i]!.ifname, l.name));
    const shapingChanged = (['rate', 'delay', 'jitter', 'loss'] as const).some((k) => l.shaping[k] !== req[k]);
    if (shapingChanged) {
      await reshape(0, shaping);
      await reshape(1, shaping).catch(async (err: unknown) => {
        await reshape(0, l.shaping).catch(() => undefined);
        throw err;
      });
    }
    // No MTU asked is a veth's own, 1500.
    if ((req.mtu ?? VETH_MTU) !== (l.mtu ?? VETH_MTU)) {
      for (const [i, e] of l.ends.entries()) await setLink(this.deps.netlink.get(sbs[i]!.netnsPath), e.ifname, { mtu: req.mtu ?? VETH_MTU });
    }
    const next: LinkRecord = { ...l, shaping, ...(req.mtu !== undefined ? { mtu: req.mtu } : {}) };
    if (req.mtu === undefined) delete next.mtu;
    this.deps.store.links.put(next);
    this.deps.logger.info({ link: l.name, shaping, mtu: req.mtu }, 'link settings changed');
    return next;
  }

  private make(name: string, req: CreateLinkRequest, sbs: [SandboxRecord, SandboxRecord], shaping: LinkShaping): Promise<LinkRecord> {
    const { store, netlink } = this.deps;
    return withRollback(async (undo) => {
      const ends = req.ends.map((e, i): LinkEndRecord => ({
        sandboxId: sbs[i]!.id, ifname: e.ifname, macAddress: randomMac(), ...(e.address ? { address: e.address } : {}),
      })) as [LinkEndRecord, LinkEndRecord];
      const link: LinkRecord = {
        id: newId(), name, ends, shaping, labels: req.labels ?? {}, state: 'creating', created: new Date().toISOString(),
        ...(req.mtu !== undefined ? { mtu: req.mtu } : {}),
      };
      store.links.put(link);
      undo.push('record', () => store.links.delete(link.id));
      const [a, b] = ends;
      const ha = netlink.get(sbs[0].netnsPath);
      const mtu = req.mtu;
      const made = await addVeth(ha, {
        name: a.ifname, mac: a.macAddress!, ...(mtu ? { mtu } : {}),
        peer: { name: b.ifname, nsPath: sbs[1].netnsPath, mac: b.macAddress!, ...(mtu ? { mtu } : {}) },
      });
      undo.push('veth', () => deleteLink(ha, a.ifname, { ifExists: true }));
      await this.configureEnd(sbs[0], a, made.index ?? a.ifname, shaping, name);
      await this.configureEnd(sbs[1], b, made.peerIndex ?? b.ifname, shaping, name);
      link.state = 'ready';
      store.links.put(link);
      this.deps.logger.info({ link: name, ends: [`${sbs[0].name}:${a.ifname}`, `${sbs[1].name}:${b.ifname}`] }, 'link created');
      return link;
    });
  }

  /** Equivalent to: `ip -n SB addr add ADDR dev IF; ip -n SB link set IF up; tc qdisc replace dev IF root …` */
  private async configureEnd(sb: SandboxRecord, end: LinkEndRecord, dev: string | number, shaping: LinkShaping, name: string): Promise<void> {
    const h = this.deps.netlink.get(sb.netnsPath);
    if (end.address?.includes(':')) runInNetns(sb.netnsPath, () => ensureSysctl(`net/ipv6/conf/${end.ifname}/disable_ipv6`, '0'));
    if (end.address) await addAddress(h, dev, end.address, end.address.includes(':') ? { nodad: true } : {});
    await setLinkUp(h, dev);
    await shape(sb.netnsPath, end.ifname, shaping, name);
  }

  /** Deletes the link (its veth pair, then its record); idempotent. */
  delete(ref: string): Promise<void> {
    return this.queue.run(async () => {
      const l = this.deps.store.links.getByName(ref) ?? this.deps.store.links.get(ref);
      if (l) await this.teardown(l);
    });
  }

  /** Removes every link with an end in the sandbox (before the sandbox itself goes). */
  deleteFor(sandboxId: string): Promise<void> {
    return this.queue.run(async () => {
      for (const l of this.list().filter((x) => x.ends.some((e) => e.sandboxId === sandboxId))) await this.teardown(l);
    });
  }

  private async teardown(l: LinkRecord): Promise<void> {
    const { store, netlink } = this.deps;
    store.links.put({ ...l, state: 'deleting' });
    const steps: Array<[string, () => Promise<unknown> | unknown]> = l.ends.map((e) => [`veth ${e.ifname}`, async () => {
      const sb = store.sandboxes.get(e.sandboxId);
      if (sb && this.deps.exists(sb.netnsPath)) await deleteLink(netlink.get(sb.netnsPath), e.ifname, { ifExists: true });
    }]);
    await bestEffort(`link ${l.name}`, [...steps, ['record', () => store.links.delete(l.id)]]);
  }

  /** At start: removes links a crash left half-made and links whose sandbox or namespace is gone. */
  reconcile(): Promise<string[]> {
    return this.queue.run(async () => {
      const done: string[] = [];
      for (const l of this.list()) {
        const sbs = l.ends.map((e) => this.deps.store.sandboxes.get(e.sandboxId));
        const gone = sbs.some((sb) => !sb || !this.deps.exists(sb.netnsPath));
        if (l.state === 'ready' && !gone) continue;
        await this.teardown(l).catch((err) => this.deps.logger.warn({ err }, 'reconcile link'));
        done.push(`link ${l.name}: removed (${l.state !== 'ready' ? `interrupted while ${l.state}` : 'a sandbox is gone'})`);
      }
      return done;
    });
  }
}
