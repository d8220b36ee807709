// The overlay's watch of the Docker engine's endpoint interfaces (DetachedLinks): an interface that
// goes is reported once, by its link event; one found by an earlier listing (a restart's) that went
// before the watch began, when no event is left to tell, is reported too, from the links read again.
import pino from 'pino';
import { expect, it } from 'vitest';
import { DetachedLinks } from '../../drivers/overlay/detached.js';
import { LinkEvents } from '../../drivers/overlay/link-events.js';
import { addVeth, deleteLink } from '../../src/netlink/index.js';
import { describeRoot } from '../helpers/root.js';
import { makeNs } from '../helpers/netns.js';
import { handleOn } from './netlink-helpers.js';

async function until(what: string, pred: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A namespace with two veth pairs (A0/A1, B0/B1), and a watch of its links that records what it reports gone. */
async function twoPairs(tag: string, a: string, b: string) {
  const ns = await makeNs(tag);
  const h = handleOn(ns);
  const gone: string[] = [];
  const log = pino({ level: 'silent' });
  const links = new DetachedLinks<string>(new LinkEvents({ get: () => h }, log), log, async (item) => void gone.push(item));
  for (const p of [a, b]) await addVeth(h, { name: `${p}0`, peer: { name: `${p}1` } });
  return { ns, h, gone, links };
}

describeRoot('overlay: the watch of Docker endpoints\' interfaces', () => {
  it('reports an interface deleted while watched, once, and not one that stays', async () => {
    const { h, gone, links } = await twoPairs('dlw', 'dla', 'dlb');
    links.watch('dla0', 'endpoint a');
    links.watch('dlb0', 'endpoint b');
    await deleteLink(h, 'dla0');
    await until('endpoint a reported', () => gone.length > 0);
    await new Promise((r) => setTimeout(r, 100));
    expect(gone).toEqual(['endpoint a']);
    links.forget('dlb0');
  });

  it('reports an interface that an earlier listing found and that went before the watch began', async () => {
    const { ns, h, gone, links } = await twoPairs('dlr', 'dlc', 'dld');
    // Listed (by the restore), then deleted before the watch: its del-link event came before any subscription.
    const listed = (await ns.sh(['ip', '-br', 'link', 'show'])).split('\n').map((l) => l.split(/[\s@]/)[0]);
    expect(listed).toEqual(expect.arrayContaining(['dlc0', 'dld0']));
    await deleteLink(h, 'dlc0');
    links.watch('dlc0', 'endpoint c', { listedEarlier: true });
    links.watch('dld0', 'endpoint d', { listedEarlier: true });
    await until('endpoint c reported', () => gone.length > 0);
    await new Promise((r) => setTimeout(r, 100));
    expect(gone).toEqual(['endpoint c']);
    links.forget('dld0');
  });
});
