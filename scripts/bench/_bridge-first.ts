// The first endpoint on a bridge, for the bridge benchmark, like for like: each round makes a new
// cnmkit network (its bridge) and a new CNI bridge, then times each side's first join, with the
// bridge's creation counted on both sides (cnmkit: network create + connect; CNI: the ADD that
// creates its bridge) and on a bridge that exists on both sides (one join came and went before).
// Limits: a few rounds only (the sides alternate who goes first); the sandboxes and namespaces are
// made beforehand and not timed; round 1 is cnmkit's first connect since the daemon started.
import { createNamedNetns, deleteNamedNetns } from '../../src/netns/index.js';
import type { BenchDaemon } from './_cnmkitd.js';
import { CniBridge } from './_cni.js';
import { checkInterrupt, exec, timed } from './_procs.js';

export const FIRST_ROUNDS = 5;

export interface FirstEndpointRuns {
  rounds: number;
  /** cnmkit: POST /v1/networks (makes its bridge), the first connect to it, a connect after one came and went. */
  netCreate: number[];
  connectFirst: number[];
  connectAgain: number[];
  /** CNI: the first ADD (makes its bridge), an ADD after one came and went (the bridge exists). */
  addFirst: number[];
  addAgain: number[];
}

async function linkExists(hostNsPath: string, name: string): Promise<boolean> {
  return (await exec(['nsenter', `--net=${hostNsPath}`, '--', 'ip', 'link', 'show', 'dev', name])).code === 0;
}

async function cnmkitRound(d: BenchDaemon, prefix: string, k: number, r: FirstEndpointRuns): Promise<void> {
  const net = `first${k}`;
  const [a, b] = [`${prefix}-s-f${k}a`, `${prefix}-s-f${k}b`];
  for (const sb of [a, b]) await d.request('POST', '/v1/sandboxes', { name: sb });
  r.netCreate.push((await timed(() => d.request('POST', '/v1/networks', { name: net, subnet: `198.18.${96 + k}.0/24` }))).ms);
  r.connectFirst.push((await timed(() => d.request('POST', `/v1/networks/${net}/connect`, { sandbox: a }))).ms);
  await d.request('POST', `/v1/networks/${net}/disconnect`, { sandbox: a });
  r.connectAgain.push((await timed(() => d.request('POST', `/v1/networks/${net}/connect`, { sandbox: b }))).ms);
  await d.request('POST', `/v1/networks/${net}/disconnect`, { sandbox: b });
  for (const sb of [a, b]) await d.request('DELETE', `/v1/sandboxes/${sb}`);
  await d.request('DELETE', `/v1/networks/${net}`);
}

async function cniRound(hostNsPath: string, dataDir: string, prefix: string, k: number, r: FirstEndpointRuns): Promise<void> {
  const bridge = `cnifb${k}`;
  const cni = new CniBridge({ hostNsPath, bridge, subnet: `198.18.${104 + k}.0/24`, dataDir, network: `first${k}` });
  const [a, b] = [`${prefix}-c-f${k}a`, `${prefix}-c-f${k}b`];
  for (const ns of [a, b]) createNamedNetns(ns);
  try {
    if (await linkExists(hostNsPath, bridge)) throw new Error(`bench bridge: ${bridge} exists before CNI's first ADD`);
    r.addFirst.push((await timed(() => cni.call('ADD', `first${k}a`, `/run/netns/${a}`))).ms);
    if (!(await linkExists(hostNsPath, bridge))) throw new Error(`bench bridge: CNI's first ADD did not make ${bridge}`);
    await cni.call('DEL', `first${k}a`, `/run/netns/${a}`);
    r.addAgain.push((await timed(() => cni.call('ADD', `first${k}b`, `/run/netns/${b}`))).ms);
    await cni.call('DEL', `first${k}b`, `/run/netns/${b}`);
  } finally {
    for (const ns of [a, b]) deleteNamedNetns(ns);
    await exec(['nsenter', `--net=${hostNsPath}`, '--', 'ip', 'link', 'del', 'dev', bridge]);
  }
}

/** FIRST_ROUNDS rounds on new bridges; who goes first alternates. Sandbox names start with `${prefix}-s-`, namespaces with `${prefix}-c-`. */
export async function measureFirstEndpoints(d: BenchDaemon, cniHostNsPath: string, dataDir: string, prefix: string): Promise<FirstEndpointRuns> {
  const r: FirstEndpointRuns = { rounds: FIRST_ROUNDS, netCreate: [], connectFirst: [], connectAgain: [], addFirst: [], addAgain: [] };
  for (let k = 0; k < FIRST_ROUNDS; k++) {
    checkInterrupt();
    const sides = [() => cnmkitRound(d, prefix, k, r), () => cniRound(cniHostNsPath, dataDir, prefix, k, r)];
    for (const side of k % 2 === 0 ? sides : sides.reverse()) await side();
  }
  return r;
}
