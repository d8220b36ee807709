// A VXLAN device brought down and up by hand (an admin, a network manager) on one of two simulated
// hosts: the kernel flushes its neighbour entries, the permanent ones too, and its sandboxes then
// reach no remote peer (the device answers ARP only from that table). The daemon puts the entries
// back when the device is up again, without a restart and with nothing changed in the cluster.
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { pings, simCli, type SimHost, simJoined, simVni, waitFor } from '../helpers/cluster.js';
import { run } from '../helpers/exec.js';

interface Ep { ipv4?: string; macAddress?: string }

let hosts: SimHost[];
const made: { h: SimHost; sb: string }[] = [];
let vx = '';

const ip = (cidr: string | undefined): string => cidr!.split('/')[0]!;

const neighbours = async (h: SimHost): Promise<string> => (await h.ns.sh(['ip', 'neigh', 'show', 'dev', vx])).trim();
/** How many times the host's daemon logged its VXLAN device up again after a down. */
const upAgain = (h: SimHost): number => h.daemon.log.split('\n').filter((l) => l.includes('VXLAN device up again')).length;


describeRoot('overlay device down and up', () => {
  simSuite({ hosts: 2, leaseTtl: 3 }, made, async (s) => {
    hosts = s.hosts;
    await simCli(hosts[0]!, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.212.0/24', 'ovflap']);
    vx = `ovvx${await simVni(hosts[0]!, 'ovflap')}`;
    await simCli(hosts[0]!, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.213.0/24', 'ovflap2']);
  });

  it('the neighbour entries a down flushed are programmed again once the device is up, and traffic flows again', async () => {
    const [h1, h2] = hosts as [SimHost, SimHost];
    // h2 follows link events already (another overlay's endpoint): the events of its devices' making are read.
    await simJoined<Ep>(h2, 'ovflap2', made);
    const a = await simJoined<Ep>(h1, 'ovflap', made);
    const b = await simJoined<Ep>(h2, 'ovflap', made);
    const entry = `${ip(b.ep.ipv4)} lladdr ${b.ep.macAddress} PERMANENT`;
    await waitFor('h1 programmed b', async () => ((await neighbours(h1)) === entry ? true : undefined), 5000);
    // h2 made its devices at its join (born down, then set up): that is no flap, and reads nothing again.
    await waitFor('h2 programmed a', async () => ((await neighbours(h2)).includes('PERMANENT') ? true : undefined), 5000);
    expect(upAgain(h1) + upAgain(h2)).toBe(0);
    await h1.ns.sh(['ip', 'link', 'set', vx, 'down']);
    // The kernel's own doing, which the daemon cannot prevent: the entries are gone while it is down.
    expect(await neighbours(h1)).toBe('');
    await h1.ns.sh(['ip', 'link', 'set', vx, 'up']);
    await waitFor('h1 programmed b again', async () => ((await neighbours(h1)) === entry ? true : undefined), 2000);
    expect(upAgain(h1)).toBe(1);
    expect(upAgain(h2)).toBe(0);
    await run(['ip', 'netns', 'exec', a.sb, 'ip', 'neigh', 'flush', 'all']);
    expect(await pings(a.sb, ip(b.ep.ipv4))).toBe(true);
    const check = await h1.daemon.cmd(['check']);
    expect(check.stdout).toContain('no drift');
    expect(check.code).toBe(0);
  });
});
