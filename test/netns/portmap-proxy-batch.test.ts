// The userland proxy publishing many ports in one call: a 1000-port range reachable end to end,
// all-or-nothing batches when a port is taken or input is bad, and the per-namespace ephemeral range.
import { afterEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { Background, nodeFixture, PORT_TOOL, ProxyProcess } from './fixtures/portmap-harness.js';
import { listeningPorts, proxyTopology, waitListening, type ProxyTopology } from './fixtures/portmap-topology.js';

const started: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop()));
});

async function proxyIn(topo: ProxyTopology): Promise<ProxyProcess> {
  const proxy = await ProxyProcess.start(topo.host.name);
  started.push(proxy);
  return proxy;
}

/** The ports fixture serving START..END in the container, answering with the port's number. */
async function portServer(topo: ProxyTopology, proto: 'tcp' | 'udp', start: number, end: number): Promise<void> {
  const server = Background.spawn(topo.container.name, nodeFixture(PORT_TOOL, ['serve', proto, String(start), String(end)]));
  started.push(server);
  await server.waitFor(/^serving /);
}

interface ProbeSummary {
  ok: number;
  failed: number;
  failures: { port: number; got: string }[];
}

async function probe(ns: ProxyTopology['host'], proto: 'tcp' | 'udp', host: string, start: number, end: number, expected: number): Promise<ProbeSummary> {
  const out = await ns.sh(nodeFixture(PORT_TOOL, ['probe', proto, host, String(start), String(end), String(expected)]), { timeoutMs: 60_000 });
  return JSON.parse(out) as ProbeSummary;
}

describeRoot('userland proxy: ranges and all-or-nothing batches', () => {
  it('publishes a 1000-port TCP range in one call, reachable at both ends and everywhere between', async () => {
    const topo = await proxyTopology();
    await portServer(topo, 'tcp', 20000, 20999);
    const proxy = await proxyIn(topo);
    const mapping = { proto: 'tcp', hostPort: 30000, hostPortEnd: 30999, containerIP: topo.containerIP, containerPort: 20000, containerPortEnd: 20999 };
    await proxy.call('publish', { owner: 'range', mappings: [mapping] });
    const bound = await listeningPorts(topo.host, 'tcp');
    expect(bound.length).toBe(1000);
    expect([bound[0], bound[999]]).toEqual([30000, 30999]);

    for (const [hostPort, containerPort] of [[30000, 20000], [30999, 20999]])
      expect(await topo.client.sh(['nc', '-N', '-w', '5', '198.19.0.1', String(hostPort)], { input: 'ping\n' })).toBe(`${containerPort}\nping\n`);
    expect(await probe(topo.host, 'tcp', '127.0.0.1', 30000, 30999, 20000)).toEqual({ ok: 1000, failed: 0, failures: [] });

    expect(await proxy.call('unpublish', { owner: 'range' })).toBe(1000);
    expect(await listeningPorts(topo.host, 'tcp')).toEqual([]);
  });

  it('publishes a 200-port UDP range reachable from the client namespace', async () => {
    const topo = await proxyTopology();
    await portServer(topo, 'udp', 21000, 21199);
    const proxy = await proxyIn(topo);
    await proxy.call('publish', { owner: 'udp-range', mappings: [{ proto: 'udp', hostPort: 31000, hostPortEnd: 31199, containerIP: topo.containerIP, containerPort: 21000, containerPortEnd: 21199 }] });
    expect((await listeningPorts(topo.host, 'udp')).length).toBe(200);
    expect(await probe(topo.client, 'udp', '198.19.0.1', 31000, 31199, 21000)).toEqual({ ok: 200, failed: 0, failures: [] });
  });

  it('refuses a batch when a port is held by another listener, naming the port, and keeps nothing of it bound', async () => {
    const topo = await proxyTopology();
    const holder = Background.spawn(topo.host.name, ['socat', 'TCP4-LISTEN:31005', '-']);
    started.push(holder);
    await waitListening(topo.host, 'tcp', 31005);
    const proxy = await proxyIn(topo);
    const mappings = [
      { proto: 'udp', hostPort: 32000, containerIP: topo.containerIP, containerPort: 53 },
      { proto: 'tcp', hostPort: 31000, hostPortEnd: 31010, containerIP: topo.containerIP, containerPort: 80, containerPortEnd: 90 },
    ];
    await expect(proxy.call('publish', { owner: 'web', mappings })).rejects.toMatchObject({
      name: 'PortInUseError',
      code: 'ERR_CONFLICT',
      message: expect.stringMatching(/^port 31005\/tcp on all addresses is already in use by another socket on this host \(none of the batch's 12 ports is kept\)$/),
    });
    expect(await listeningPorts(topo.host, 'tcp')).toEqual([31005]);
    expect(await listeningPorts(topo.host, 'udp')).toEqual([]);
    expect(await proxy.call('list')).toEqual([]);
  });

  it('refuses a batch when a UDP port is held, naming it, and keeps nothing bound', async () => {
    const topo = await proxyTopology();
    const holder = Background.spawn(topo.host.name, ['socat', 'UDP4-RECV:32000', '-']);
    started.push(holder);
    await waitListening(topo.host, 'udp', 32000);
    const proxy = await proxyIn(topo);
    const mappings = [
      { proto: 'tcp', hostPort: 31000, hostPortEnd: 31009, containerIP: topo.containerIP, containerPort: 80, containerPortEnd: 89 },
      { proto: 'udp', hostPort: 31999, hostPortEnd: 32001, containerIP: topo.containerIP, containerPort: 53, containerPortEnd: 55 },
    ];
    await expect(proxy.call('publish', { owner: 'dns', mappings })).rejects.toMatchObject({
      name: 'PortInUseError',
      code: 'ERR_CONFLICT',
      message: 'port 32000/udp on all addresses is already in use by another socket on this host (none of the batch\'s 13 ports is kept)',
    });
    expect(await listeningPorts(topo.host, 'tcp')).toEqual([]);
    expect(await listeningPorts(topo.host, 'udp')).toEqual([32000]);
  });

  it('refuses a port published for another owner and names that owner', async () => {
    const topo = await proxyTopology();
    const proxy = await proxyIn(topo);
    await proxy.call('publish', { owner: 'first', mappings: [{ proto: 'tcp', hostIP: '127.0.0.1', hostPort: 8080, containerIP: topo.containerIP, containerPort: 80 }] });
    const second = { proto: 'tcp', hostPort: 8079, hostPortEnd: 8081, containerIP: topo.containerIP, containerPort: 79, containerPortEnd: 81 };
    await expect(proxy.call('publish', { owner: 'second', mappings: [second] })).rejects.toMatchObject({
      name: 'ConflictError',
      message: expect.stringContaining('port 8080/tcp on all addresses is already published for "first"'),
    });
    expect(await listeningPorts(topo.host, 'tcp')).toEqual([8080]);
    expect((await proxy.call<{ owner: string }[]>('list')).map((m) => m.owner)).toEqual(['first']);
  });

  it('refuses bad input before binding anything: the error names the field', async () => {
    const topo = await proxyTopology();
    const proxy = await proxyIn(topo);
    const good = { proto: 'tcp', hostPort: 8080, containerIP: topo.containerIP, containerPort: 80 };
    await expect(proxy.call('publish', { owner: 'x', mappings: [good, { ...good, hostPort: 8081, containerIP: 'nope' }] })).rejects.toMatchObject({
      name: 'InvalidArgumentError',
      field: 'mappings[1].containerIP',
    });
    // An address the host does not have fails at bind time; the good mapping is not kept either.
    await expect(proxy.call('publish', { owner: 'x', mappings: [good, { ...good, hostIP: '198.51.100.7', hostPort: 8081 }] })).rejects.toMatchObject({
      name: 'InvalidArgumentError',
      field: 'hostIP',
      message: expect.stringContaining('198.51.100.7 is not an address of this host'),
    });
    expect(await listeningPorts(topo.host, 'tcp')).toEqual([]);
  });

  it('reads the ephemeral port range of the namespace it runs in', async () => {
    const topo = await proxyTopology();
    await topo.host.sh(['sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=40000 40100']);
    const proxy = await proxyIn(topo);
    expect(await proxy.call('ephemeralRange')).toEqual({ start: 40000, end: 40100 });
  });
});
