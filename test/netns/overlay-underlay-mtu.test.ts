// The overlay's read of the underlay's MTU (drivers/overlay/underlay.ts) in a throwaway namespace,
// changed with iproute2 behind its back: the interface holding the VTEP address gives its MTU less
// 50; a change of that MTU is followed (from its link event), as is the interface's deletion and the
// address on another interface, also once the interface was renamed; no interface with the address
// is refused, naming it.
import pino from 'pino';
import { expect, it } from 'vitest';
import { LinkEvents } from '../../drivers/overlay/link-events.js';
import { UnderlayMtu } from '../../drivers/overlay/underlay.js';
import { ConflictError } from '../../src/errors.js';
import { describeRoot } from '../helpers/root.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { handleOn } from './netlink-helpers.js';

const VTEP = '198.18.5.1';

/** Reads until the read gives want, at most ms. */
async function readsWithin(read: () => Promise<number>, want: number, ms = 2000): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = await read();
    if (got === want || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A throwaway namespace whose u0 holds the VTEP address, and reads of its underlay MTU (following its link events, or not). */
async function underlayIn(tag: string, events = true): Promise<{ ns: TestNs; read: () => Promise<number> }> {
  const ns = await makeNs(tag);
  const h = handleOn(ns);
  await ns.sh(['ip', 'link', 'add', 'u0', 'type', 'veth', 'peer', 'name', 'u1']);
  await ns.sh(['ip', 'addr', 'add', `${VTEP}/24`, 'dev', 'u0']);
  const underlay = new UnderlayMtu(events ? new LinkEvents({ get: () => h }, pino({ level: 'silent' })) : undefined);
  return { ns, read: () => underlay.read(h, VTEP) };
}

describeRoot('overlay: the underlay MTU', () => {
  it('follows the VTEP interface: its MTU changed, the interface gone and the address on another one', async () => {
    const { ns, read } = await underlayIn('umtu');
    expect(await read()).toBe(1450);
    await ns.sh(['ip', 'link', 'set', 'u0', 'mtu', '9000']);
    expect(await readsWithin(read, 8950)).toBe(8950);
    await ns.sh(['ip', 'link', 'set', 'u0', 'mtu', '1400']);
    expect(await readsWithin(read, 1350)).toBe(1350);
    await ns.sh(['ip', 'link', 'del', 'u0']);
    await ns.sh(['ip', 'link', 'add', 'w0', 'mtu', '4000', 'type', 'veth', 'peer', 'name', 'w1']);
    await ns.sh(['ip', 'addr', 'add', `${VTEP}/24`, 'dev', 'w0']);
    expect(await readsWithin(read, 3950)).toBe(3950);
    await ns.sh(['ip', 'addr', 'del', `${VTEP}/24`, 'dev', 'w0']);
    await ns.sh(['ip', 'link', 'del', 'w0']);
    await expect(readsWithin(read, -1, 300)).rejects.toThrow(ConflictError);
    await expect(read()).rejects.toThrow(`the advertise address ${VTEP} (--advertise-addr) is on no interface of this host`);
  });

  it('follows the VTEP interface renamed: its MTU changed after, then its deletion (the address gone: refused)', async () => {
    const { ns, read } = await underlayIn('umtr');
    expect(await read()).toBe(1450);
    await ns.sh(['ip', 'link', 'set', 'u0', 'name', 'under0']);
    await ns.sh(['ip', 'link', 'set', 'under0', 'mtu', '1300']);
    expect(await readsWithin(read, 1250)).toBe(1250);
    await ns.sh(['ip', 'link', 'del', 'under0']);
    await expect(readsWithin(read, -1, 300)).rejects.toThrow(`the advertise address ${VTEP} (--advertise-addr) is on no interface of this host`);
  });

  it('without link events it asks the kernel at each read', async () => {
    const { ns, read } = await underlayIn('umtn', false);
    expect(await read()).toBe(1450);
    await ns.sh(['ip', 'link', 'set', 'u0', 'mtu', '2000']);
    expect(await read()).toBe(1950);
  });
});
