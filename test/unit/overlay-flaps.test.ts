// The overlay's watch of its VXLAN devices for a down and up (drivers/overlay/flaps.ts), fed
// link events by hand: a device made by the bring-up that started the watch is born down and then
// set up, and those events (read after the watch began) are no flap; a down and up after that is,
// once; a device that was there before the watch flaps at its first down and up; an up read before
// the bring-up said which (its own events) makes the next down count.
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { DeviceFlaps } from '../../drivers/overlay/flaps.js';
import type { LinkEvents, LinkFollower } from '../../drivers/overlay/link-events.js';
import type { Link } from '../../src/netlink/index.js';

function setup(): { flaps: DeviceFlaps; send: (name: string, up: boolean) => void } {
  const followers = new Set<LinkFollower>();
  const events = { follow: (f: LinkFollower) => followers.add(f), unfollow: (f: LinkFollower) => followers.delete(f) } as unknown as LinkEvents;
  const flaps = new DeviceFlaps(events, pino({ level: 'silent' }));
  const send = (name: string, up: boolean) => {
    const link = { kind: 'vxlan', name, index: 7, up } as unknown as Link;
    for (const f of followers) if (f.follows(name, link.index)) f.onEvent({ type: 'new-link', link });
  };
  return { flaps, send };
}

describe('overlay VXLAN device flaps', () => {
  it('a device made by the bring-up: its birth down and first up are no flap; a later down and up is one', async () => {
    const { flaps, send } = setup();
    let rereads = 0;
    flaps.watch('ovvx4096', async () => rereads++);
    flaps.made('ovvx4096', true);
    send('ovvx4096', false);
    send('ovvx4096', true);
    send('ovvx4096', true);
    expect(rereads).toBe(0);
    send('ovvx4096', false);
    send('ovvx4096', true);
    expect(rereads).toBe(1);
    send('ovvx4096', true);
    expect(rereads).toBe(1);
  });

  it('a device that was there before the watch: its first down and up is a flap', async () => {
    const { flaps, send } = setup();
    let rereads = 0;
    flaps.watch('ovvx4097', async () => rereads++);
    flaps.made('ovvx4097', false);
    send('ovvx4097', true);
    expect(rereads).toBe(0);
    send('ovvx4097', false);
    send('ovvx4097', true);
    expect(rereads).toBe(1);
  });

  it('events read before the bring-up said whether it made the device: an up counts, a down does not', async () => {
    const { flaps, send } = setup();
    let rereads = 0;
    flaps.watch('ovvx4100', async () => rereads++);
    send('ovvx4100', false);
    send('ovvx4100', true);
    flaps.made('ovvx4100', true);
    send('ovvx4100', false);
    send('ovvx4100', true);
    expect(rereads).toBe(1);
  });

  it('events of a device no watch follows change nothing', async () => {
    const { flaps, send } = setup();
    let rereads = 0;
    flaps.watch('ovvx4098', async () => rereads++);
    flaps.made('ovvx4098', false);
    send('ovvx4099', false);
    send('ovvx4099', true);
    expect(rereads).toBe(0);
  });
});
