// The overlay driver: VXLAN networks across hosts, their record, VNI, subnets, addresses and
// peers in the cluster store (src/cluster). Per host, while the network is here: a bridge and a
// VXLAN device in the daemon's namespace, veth endpoints on the bridge, each published as a peer
// (IP, MAC, VTEP) on the host's lease — at a connect with the endpoint's reserved addresses, in
// one transaction sent before the veth is made, or queued to land just after the connect answers
// when they are spares of this host's stock (src/cluster/spares.ts, held while the network is
// here); every host programs the others' peers as static FDB and neighbour entries from a watch
// (./program.ts). An endpoint's cluster writes are ./writes.ts's; those for endpoints that go are
// retried until the store answers (./pending.ts); after a restart, this host's peers and endpoint
// addresses in the store that no endpoint has are removed once it answers (a disconnect's writes
// still queued when the daemon stopped). The Docker engine's endpoints (detached, made at
// its CreateEndpoint) are published at its Join and removed at its DeleteEndpoint, or as soon as
// their interface vanishes unannounced (./detached.ts), or, at a restart, when the engine handed a
// joined one's container end back while the daemon was away (its calls found no plugin). A host's first connect on a network makes
// its devices while the controller chooses the endpoint's address (GlobalScope.prepare), and
// claims the spare stock after it answers. A network restored with no MTU to make its devices
// with (the advertise address on no interface, no bridge of it left) and no endpoint port here
// waits for its next connect. Limits: IPv4 underlay only; no encryption; such a restore that
// still has endpoint ports here (but no bridge) fails.
import type { Driver, DriverContext } from '../../src/contract/driver.js';
import type { EndpointRecord, NetworkRecord } from '../../src/core/model.js';
import { bestEffort } from '../../src/core/steps.js';
import { handedBack, markJoined } from '../../src/contract/handback.js';
import { dockerAddressOwner } from '../../src/cluster/types.js';
import { listLinks, setLink } from '../../src/netlink/index.js';
import { ConflictError } from '../../src/errors.js';
import { mark } from '../../src/core/trace.js';
import { checkLeftovers, checkOverlay, repairOverlay } from './check.js';
import { parseOverlayConfig, type OverlayConfig } from './config.js';
import { deviceNames, keptMtu, sweepDevices } from './device.js';
import { UnderlayMtu } from './underlay.js';
import { checkPlacement, detachedInfo, hostIfnameOf, leaveSandbox, macFor, makeVeth, refuseTakenMac, type OverlayEndpointData } from './endpoint.js';
import { globalScope, needCluster } from './global.js';
import { DetachedLinks } from './detached.js';
import { DeviceFlaps } from './flaps.js';
import { LinkEvents } from './link-events.js';
import { HostNetwork } from './hostnet.js';
import { PendingWrites } from './pending.js';
import { republishRestored, type Restoring } from './republish.js';
import { endpointWrites } from './writes.js';

export { parseOverlayConfig, type OverlayConfig } from './config.js';

/**
 * Lets a request just made reach its socket (an etcd call's HTTP request is written from
 * the event loop), so that etcd works on it while this thread does synchronous netlink work.
 */
const requestSent = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** How long a first join waits for the network's peers to be programmed here (etcd answers in ms). */
const FIRST_PROGRAM_MS = 2000;

/** Until work is done, at most FIRST_PROGRAM_MS. */
function bounded(work: Promise<unknown>): Promise<unknown> {
  return Promise.race([work, new Promise((r) => setTimeout(r, FIRST_PROGRAM_MS).unref())]);
}

/** Until the network's first batch of peers is programmed here, at most FIRST_PROGRAM_MS (a first join, a restore). */
function firstProgram(s: HostNetwork): Promise<unknown> {
  return bounded(s.ready);
}

export function createOverlayDriver(ctx: DriverContext): Driver<OverlayConfig> {
  const log = ctx.logger.child({ driver: 'overlay' });
  const pending = new PendingWrites(log);
  const nets = new Map<string, HostNetwork>();
  const linkEvents = new LinkEvents(ctx.netlink, log);
  const flaps = new DeviceFlaps(linkEvents, log);
  /** Endpoints found at start-up by network id (sweep), for restore. */
  const found = new Map<string, EndpointRecord[]>();
  /**
   * Until the first restore round has ended (start-up), the networks here are not known yet: an
   * endpoint torn down before it does not decide whether the network's devices go (other local
   * endpoints may remain); restore does, for the networks named here.
   */
  let started = false;
  const leftAtStart = new Set<string>();
  const vniOf = (config: OverlayConfig): number => {
    if (config.vni === undefined) throw new ConflictError('overlay network has no VXLAN id yet (it was not created in the cluster)');
    return config.vni;
  };
  const stateOf = (net: NetworkRecord, config: OverlayConfig): HostNetwork => {
    let s = nets.get(net.id);
    if (!s) {
      s = new HostNetwork(net.name, { ...config, vni: vniOf(config) }, flaps);
      nets.set(net.id, s);
    }
    return s;
  };
  const poolsOf = (net: NetworkRecord): string[] => [net.ipv4[0]?.poolId, net.ipv6[0]?.poolId].filter((p): p is string => p !== undefined);
  const underlay = new UnderlayMtu(linkEvents);
  const underlayMtu = (): Promise<number> => underlay.read(ctx.netlink.get(), needCluster(ctx.cluster).vtep);
  /** The host's stock of spare addresses in the network's pools, claimed in the background (its connects then answer with no round trip). */
  const holdSpares = (net: NetworkRecord, s: HostNetwork): void => {
    if (s.holdsSpares) return;
    s.holdsSpares = true;
    needCluster(ctx.cluster).holdSpares(poolsOf(net));
  };
  /**
   * Devices and watch up, and the spares held (sparesLater: once the connect that brought the
   * network here has answered, so that their claim does not queue before its own transaction).
   */
  const bringUp = async (net: NetworkRecord, config: OverlayConfig, o: { underlayMtu?: () => Promise<number>; sparesLater?: boolean } = {}): Promise<HostNetwork> => {
    const s = stateOf(net, config);
    // A given MTU needs no read of the VTEP's interface, but a request still needs the address here
    // (refused naming it otherwise); a restore (its own underlayMtu) keeps what it finds.
    if (config.mtu !== undefined && !o.underlayMtu && !s.isUp) await underlayMtu();
    if (!o.sparesLater) holdSpares(net, s);
    await s.up(ctx.netlink.get(), ctx.sysctl, needCluster(ctx.cluster), log, o.underlayMtu ?? underlayMtu);
    return s;
  };
  const { peerOf, addressesOf, publish, joinCluster, removePeer, releaseAddresses, unpublish } = endpointWrites(() => ctx.cluster, pending);

  /** The network leaves this host when nothing holds it here: devices go, and the cluster is told. */
  const release = async (net: NetworkRecord, s: HostNetwork, deleting: boolean): Promise<void> => {
    if (s.local.size > 0 || (s.config.createdHere && !deleting)) return;
    nets.delete(net.id);
    await s.down(ctx.netlink.get());
    const c = needCluster(ctx.cluster);
    await pending.run(`spares:${net.name}`, () => c.dropSpares(poolsOf(net)));
    await pending.run(`leave:${net.name}`, () => c.leaveNetwork(net.name));
  };

  /** Host-side names of links in the daemon's namespace (where every endpoint's host end lives). */
  const hostLinks = async (): Promise<Set<string>> => new Set((await listLinks(ctx.netlink.get())).map((l) => l.name));
  /** A Docker endpoint goes: its peer first (retried until the store answers), then the network if nothing else holds it here. */
  const dropDetached = async (net: NetworkRecord, ep: EndpointRecord): Promise<void> => {
    const s = nets.get(net.id);
    await removePeer(net, ep);
    if (!s) return;
    s.local.delete(ep.id);
    await release(net, s, false);
  };
  /** A Docker endpoint whose interface vanished (the engine forgot it): its peer goes, and its address, which the engine may never release. */
  const dropGone = async (net: NetworkRecord, ep: EndpointRecord): Promise<void> => {
    await dropDetached(net, ep);
    await releaseAddresses(net, ep, dockerAddressOwner(needCluster(ctx.cluster).hostId));
  };
  /** An endpoint whose host link vanished unannounced: the engine's goes (dropGone); a sandbox's (its namespace deleted by hand) loses its peer, its record and address kept until `sandbox rm`. */
  const links = new DetachedLinks<{ net: NetworkRecord; ep: EndpointRecord }>(linkEvents, log, async ({ net, ep }) => {
    log.info({ network: net.name, endpoint: ep.name, link: hostIfnameOf(ep) }, ep.sandboxId === undefined ? 'overlay: a Docker endpoint\'s interface vanished without the engine saying so; its peer goes' : 'overlay: an endpoint\'s veth vanished (its sandbox\'s namespace deleted?): its peer is withdrawn from the cluster');
    await (ep.sandboxId === undefined ? dropGone(net, ep) : removePeer(net, ep));
  });
  /** A joined Docker endpoint whose container end is back in the daemon's namespace (src/contract/handback.ts): asked at a restore only. */
  const engineHandedBack = (ep: EndpointRecord, links: Set<string>): boolean =>
    handedBack(ep, (ep.driverData as Partial<OverlayEndpointData> | undefined)?.containerIfname, links);
  /** Networks restored since the last restored(); the host's link names and the overlay MTU, read once for them. */
  const restoring: Restoring[] = [];
  let roundLinks: Promise<Set<string>> | undefined;
  let roundMtu: Promise<number> | undefined;
  /**
   * A restore's MTU: the VTEP interface's less 50; while no interface has the VTEP address (a
   * request is refused then), that of the network's bridge an earlier run left, so that the daemon
   * starts and keeps the network as it is (its traffic flows again once the address is back).
   */
  const restoreMtu = (vni: number): Promise<number> =>
    (roundMtu ??= underlayMtu()).catch(async (err: unknown) => (await keptMtu(ctx.netlink.get(), vni)) ?? Promise.reject(err));
  const republish = (r: Restoring): Promise<void> =>
    republishRestored({ cluster: needCluster(ctx.cluster), pending, log, hostNetwork: (id: string) => nets.get(id), peerOf, addressesOf, poolsOf, dropGone }, r);

  return {
    name: 'overlay',
    scope: 'global',
    usesIpam: true,
    docker: { pluginName: 'cnmkit-overlay' },
    parse: parseOverlayConfig,
    global: {
      ...globalScope(() => ctx.cluster, pending, (net) => nets.get(net.id)),
      prepare(net) {
        if (nets.get(net.id)?.isUp) return undefined;
        // After a turn of the event loop: the address's etcd request, made just before, is sent first.
        return requestSent().then(() => bringUp(net, net.config as OverlayConfig, { sparesLater: true })).then(() => mark('prepared'));
      },
      async unprepare(net) {
        const s = nets.get(net.id);
        if (s) await release(net, s, false);
      },
    },
    async createNetwork(net, config) {
      await bringUp(net, config);
      log.info({ network: net.name, vni: config.vni }, 'overlay network ready');
      return config;
    },
    async sweep(networks, endpoints) {
      found.clear();
      for (const ep of endpoints) found.set(ep.networkId, [...(found.get(ep.networkId) ?? []), ep]);
      const vnis = new Set(networks.map((n) => (n.config as OverlayConfig).vni).filter((v): v is number => v !== undefined));
      const ports = new Set(endpoints.map(hostIfnameOf));
      const { removed, left } = await sweepDevices(ctx.netlink.get(), vnis, ports);
      // The restore that follows looks its endpoints' interfaces up in this listing.
      roundLinks = Promise.resolve(left);
      // In cluster mode the VTEP's interface is found now (an address dump), not at the first bring-up:
      // the restores of this round use its MTU, and a first connect later reads that link alone. An
      // address no interface has is not refused (a lab adds its hosts' addresses after their daemons
      // start): said here, and by cluster status and check until it is added.
      if (ctx.cluster) (roundMtu = underlayMtu()).catch((err: Error) => log.warn({ vtep: ctx.cluster?.vtep }, `${err.message} (taken for now: found once it is added, with no restart)`));
      return removed;
    },
    async restore(net, config) {
      // The Docker engine's endpoints whose interface is gone (the container ended while we were away) lose their peer.
      roundLinks ??= hostLinks();
      const have = await roundLinks;
      const ready = (found.get(net.id) ?? []).filter((e) => e.state === 'ready' && (e.sandboxId !== undefined || e.dockerId !== undefined));
      const gone = ready.filter((e) => e.sandboxId === undefined && (!have.has(hostIfnameOf(e)) || engineHandedBack(e, have)));
      // Those the engine handed back: their veth goes now, their record at the engine's next call (its host end gone).
      for (const e of gone) if (have.has(hostIfnameOf(e))) await leaveSandbox(ctx.netlink, e);
      const eps = ready.filter((e) => !gone.includes(e));
      if (eps.length === 0 && !config.createdHere) {
        // Its last local endpoint left at start-up: the devices, and the network's place here, go now.
        if (leftAtStart.delete(net.id)) await release(net, stateOf(net, config), false);
        restoring.push({ net, eps, gone });
        return;
      }
      // Here already (restored again without a restart, as by a firewall reload): kept as it is while
      // its devices are there; made again otherwise, its joined endpoints' ports put back on the new bridge.
      const old = nets.get(net.id);
      if (old?.isUp && Object.values(deviceNames(old.config.vni)).every((n) => have.has(n))) {
        for (const ep of eps) old.local.add(ep.id);
        restoring.push({ net, eps, gone, s: old });
        return;
      }
      if (old) {
        nets.delete(net.id);
        await old.down(ctx.netlink.get());
      }
      // No MTU to make its devices with (no interface has the VTEP address, none of its bridge is left,
      // as after a reboot) and nothing here to carry (no endpoint's port left): kept in the store, and
      // brought up by its next connect (which reads the MTU then); the daemon starts meanwhile.
      if (config.mtu === undefined && !eps.some((e) => have.has(hostIfnameOf(e))) && !(await restoreMtu(vniOf(config)).then(() => true, () => false))) {
        log.warn({ network: net.name, vtep: ctx.cluster?.vtep }, 'overlay: its devices are not made until the advertise address is on an interface (its next connect makes them)');
        restoring.push({ net, eps, gone });
        return;
      }
      // Devices up and the peer watch started: the remote peers are programmed from here on, while
      // the other networks are restored; this host's own endpoints are published again after all (restored()).
      const s = await bringUp(net, config, { underlayMtu: () => restoreMtu(vniOf(config)) });
      for (const id of old?.local ?? []) s.local.add(id);
      // Devices made again: the endpoints' ports that survived go on the new bridge.
      if (s.bridgeMade) for (const ep of eps) if (have.has(hostIfnameOf(ep))) await setLink(ctx.netlink.get(), hostIfnameOf(ep), { master: deviceNames(s.config.vni).bridge });
      for (const ep of eps) {
        if (ep.sandboxId === undefined || have.has(hostIfnameOf(ep))) links.watch(hostIfnameOf(ep), { net, ep }, { listedEarlier: true });
        s.local.add(ep.id);
      }
      restoring.push({ net, eps, gone, s });
    },
    async restored() {
      started = true;
      leftAtStart.clear();
      roundLinks = undefined;
      roundMtu = undefined;
      // The VTEP's interface found now (an address dump), not at this host's first overlay connect.
      if (ctx.cluster) underlayMtu().catch(() => undefined);
      const round = restoring.splice(0);
      if (round.length === 0) return;
      // Every network's remote peers first (their first batch programmed), then this host's own
      // endpoints (the other hosts lost them if its lease expired meanwhile), so that the API answers
      // with both done. Neither is waited for while etcd is away (nor longer than FIRST_PROGRAM_MS):
      // the watch programs them, and pending writes publish, when it is back.
      const waits = needCluster(ctx.cluster).status().state === 'connected';
      if (waits) await bounded(Promise.all(round.map((r) => r.s?.ready)));
      const published = Promise.all(round.map((r) => republish(r).catch((err: unknown) => log.error({ err, network: r.net.name }, 'overlay: restoring the endpoints in the cluster failed'))));
      if (waits) await bounded(published);
    },
    async check(net, _config, endpoints, unchecked = []) {
      const items = await checkOverlay(ctx.netlink, net, nets.get(net.id), endpoints, ctx.cluster, unchecked);
      const known = new Set([...endpoints.map((e) => e.ep.id), ...(nets.get(net.id)?.local ?? [])]);
      return [...items, ...(ctx.cluster ? await checkLeftovers(ctx.cluster, net.name, poolsOf(net), known, unchecked) : [])];
    },
    async repair(net, _config, endpoints) {
      const s = nets.get(net.id);
      if (s?.isUp) await repairOverlay(ctx.netlink, s, endpoints);
    },
    async deleteNetwork(net, config) {
      const s = nets.get(net.id) ?? (config.vni !== undefined ? stateOf(net, config) : undefined);
      if (s) await release(net, s, true);
    },
    async createEndpoint(net, config, ep, placement) {
      await refuseTakenMac(needCluster(ctx.cluster), net, ep);
      if (placement.kind === 'sandbox') return { macAddress: ep.macAddress ?? macFor(ep.ipv4) };
      // The Docker engine's flow: the whole interface now, detached, for the engine to move.
      const s = await bringUp(net, config);
      const { data } = await makeVeth(ctx.netlink, s.devices!.bridge, net, s.mtu, ep, placement);
      links.watch(data.hostIfname, { net, ep: { ...ep, driverData: data } });
      return { driverData: data, macAddress: data.mac };
    },
    async deleteEndpoint(net, _config, ep) {
      if (ep.sandboxId !== undefined) return;
      links.forget(hostIfnameOf(ep));
      // The Docker engine's endpoint: no leave comes through the controller, so the peer goes here.
      await bestEffort(`overlay endpoint ${ep.name}`, [
        ['interface', () => leaveSandbox(ctx.netlink, ep)],
        ['peer', () => dropDetached(net, ep)],
      ]);
    },
    async goneEndpoints(_net, _config, eps) {
      const have = await hostLinks();
      return eps.filter((e) => !have.has(hostIfnameOf(e))).map((e) => e.id);
    },
    hostInterface(_net, _config, ep) {
      return (ep.driverData as Partial<OverlayEndpointData> | undefined)?.hostIfname;
    },
    async join(net, config, ep, placement) {
      checkPlacement(net, placement);
      if (placement.kind === 'detached') {
        const s = await bringUp(net, config);
        await firstProgram(s);
        const data = ep.driverData as OverlayEndpointData;
        s.local.add(ep.id);
        try {
          await publish(net, ep, data.mac);
        } catch (err) {
          s.local.delete(ep.id);
          throw err;
        }
        return { info: detachedInfo(net, ep, data, s.mtu), macAddress: data.mac, driverData: markJoined(data) };
      }
      const s = stateOf(net, config);
      const mac = ep.macAddress ?? macFor(ep.ipv4);
      s.local.add(ep.id);
      // The cluster's one transaction (the peer, and the reserved addresses) is in flight while the
      // kernel work is done: the devices of a first endpoint here (their bring-up began at prepare), then its veth.
      const published = placement.claim ? joinCluster(net, ep, mac, placement.claim.owner) : publish(net, ep, mac);
      published.catch(() => undefined);
      // A join from spares is queued (resolved already): no turn of the event loop, which would run the queue's send first.
      await Promise.race([published.then(() => undefined, () => undefined), requestSent()]);
      mark('join sent');
      let made: Awaited<ReturnType<typeof makeVeth>>;
      try {
        await bringUp(net, config, { sparesLater: true });
        made = await makeVeth(ctx.netlink, s.devices!.bridge, net, s.mtu, ep, placement);
        mark('veth');
      } catch (err) {
        s.local.delete(ep.id);
        await published.then(() => unpublish(net, ep, placement.claim?.owner), () => undefined);
        await release(net, s, false);
        throw err;
      }
      try {
        await published;
        mark('published');
      } catch (err) {
        s.local.delete(ep.id);
        await leaveSandbox(ctx.netlink, { ...ep, driverData: made.data });
        // A first endpoint here that failed takes the devices it brought up along.
        await release(net, s, false);
        throw err;
      }
      await firstProgram(s);
      mark('programmed');
      // A first endpoint here: the stock is claimed after its answer (the network may be gone again by then).
      if (!s.holdsSpares) needCluster(ctx.cluster).afterAnswers(() => nets.get(net.id) === s && holdSpares(net, s));
      links.watch(made.data.hostIfname, { net, ep });
      return { info: made.info, macAddress: mac, driverData: made.data };
    },
    // Its sandbox's removal deletes the namespace before the leave: its veth's going is no vanishing.
    leaving: (_net, _config, ep) => links.forget(hostIfnameOf(ep)),
    async leave(net, config, ep, sb, hint) {
      links.forget(hostIfnameOf(ep));
      if (!started && !nets.has(net.id)) leftAtStart.add(net.id);
      const s = started ? (nets.get(net.id) ?? stateOf(net, config)) : nets.get(net.id);
      const c = needCluster(ctx.cluster);
      await bestEffort(`overlay endpoint ${ep.name}`, [
        // A detached endpoint's veth goes with deleteEndpoint; a destroyed namespace takes its own along.
        ['interface', () => (hint?.namespaceGone || sb === undefined || ep.sandboxId === undefined ? undefined : leaveSandbox(ctx.netlink, ep))],
        ['peer', () => pending.run(`peer:${net.name}:${ep.id}`, () => c.removePeer(net.name, ep.id))],
        ['network', () => {
          if (!s) return undefined;
          s.local.delete(ep.id);
          s.lost.delete(ep.id);
          return release(net, s, false);
        }],
      ]);
    },
  };
}
