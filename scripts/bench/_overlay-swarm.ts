// Part (e) of the overlay benchmark: Docker swarm's own overlay as the anchor, two engines (Debian's
// docker.io 20.10) on simulated hosts 1 and 2: swarm init/join, an attachable overlay, then
// `docker run -d --ip` on host 1 → first ping answered from a container on host 2, and `docker run
// -d` on the overlay vs on a local bridge, interleaved. If the engine refuses, its reason is printed.
// Environment: BENCH_OVERLAY_SWARM_RUNS (default 7). Limits: the ping is sent with nsenter into the
// probe container's namespace (no `docker exec` in the time); swarm's VXLAN uses UDP 4790 here so
// it never shares port 4789 with cnmkit's devices in the same host namespace.
import { BUSYBOX_IMAGE as IMAGE, Dockerd } from '../../test/helpers/engine.js';
import type { SimCluster, SimHost } from '../../test/helpers/cluster.js';
import { dockerMissing } from './_dockerd.js';
import { exec, fmtMs, quantile, timed } from './_procs.js';
import { type Row } from './_report.js';

const RUNS = Number(process.env.BENCH_OVERLAY_SWARM_RUNS ?? '7');
const ENGINE_ARGS = ['--bip', '198.18.1.1/24', '--default-address-pool', 'base=198.18.64.0/18,size=24'];

const row = (figure: string, peer: string, target = ''): Row => ({ figure, cnmkit: '—', peer, ratio: '—', target });

async function pingFrom(pid: string, to: string, ms: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    const r = await exec(['nsenter', `--net=/proc/${pid}/ns/net`, 'ping', '-c', '1', '-W', '0.2', to]);
    if (r.code === 0) return performance.now() - t0;
  }
  return Number.NaN;
}

async function measure(a: Dockerd, b: Dockerd, h1: SimHost): Promise<{ converge: number[]; overlay: number[]; bridge: number[] }> {
  await a.dockerOk(['swarm', 'init', '--advertise-addr', h1.ip, '--data-path-port', '4790', '--default-addr-pool', '198.18.128.0/18']);
  const token = await a.dockerOk(['swarm', 'join-token', '-q', 'worker']);
  await b.dockerOk(['swarm', 'join', '--token', token, `${h1.ip}:2377`], { timeoutMs: 60_000 });
  await a.dockerOk(['network', 'create', '-d', 'overlay', '--attachable', '--subnet', '198.18.200.0/24', 'ovs']);
  await a.dockerOk(['network', 'create', '--subnet', '198.18.201.0/24', 'lbr']);
  for (const e of [a, b]) await e.buildImage();
  await b.dockerOk(['run', '-d', '--name', 'probe', '--network', 'ovs', '--ip', '198.18.200.250', IMAGE, 'sleep', '1d']);
  const pid = await b.dockerOk(['inspect', '-f', '{{.State.Pid}}', 'probe']);
  const out = { converge: [] as number[], overlay: [] as number[], bridge: [] as number[] };
  for (let i = 0; i < RUNS + 1; i++) {
    const ov = await timed(() => a.dockerOk(['run', '-d', '--network', 'ovs', '--ip', `198.18.200.${10 + i}`, IMAGE, 'sleep', '1d']));
    const c = await pingFrom(pid, `198.18.200.${10 + i}`, 5000);
    const br = await timed(() => a.dockerOk(['run', '-d', '--network', 'lbr', IMAGE, 'sleep', '1d']));
    if (i === 0) continue; // warm-up
    out.converge.push(c);
    out.overlay.push(ov.ms);
    out.bridge.push(br.ms);
  }
  return out;
}

/** The anchor's rows; the first is the convergence p50 in ms (NaN when swarm did not run) for the ratio. */
export async function swarmAnchor(sim: SimCluster): Promise<{ rows: Row[]; convergeP50: number }> {
  const missing = dockerMissing();
  if (missing) return { rows: [row('(e) Docker swarm overlay (anchor)', 'not run', missing)], convergeP50: Number.NaN };
  const [h1, h2] = sim.hosts as [SimHost, SimHost];
  const engines: Dockerd[] = [];
  try {
    for (const h of [h1, h2]) engines.push(await Dockerd.start(h.ns, { args: ENGINE_ARGS }));
    const m = await measure(engines[0]!, engines[1]!, h1);
    const med = (xs: number[]) => quantile(xs, 0.5);
    const c50 = med(m.converge);
    return {
      convergeP50: c50,
      rows: [
        row(`(e) swarm: run -d A → 1st ping B, p50 (${RUNS})`, fmtMs(c50)),
        row('(e) swarm: … p99', fmtMs(quantile(m.converge, 0.99))),
        row('(e) swarm: run -d, overlay / bridge', `${fmtMs(med(m.overlay))} / ${fmtMs(med(m.bridge))}`, '(OVERLAY.md: 551 / 276 ms)'),
      ],
    };
  } catch (err) {
    return { rows: [row('(e) Docker swarm overlay (anchor)', 'refused', (err as Error).message.split('\n')[0]!.slice(0, 200))], convergeP50: Number.NaN };
  } finally {
    for (const e of engines.reverse()) {
      await e.docker(['swarm', 'leave', '--force']).catch(() => undefined);
      await e.cleanup().catch((err: unknown) => console.error(`bench overlay: engine cleanup: ${(err as Error).message}`));
    }
  }
}
