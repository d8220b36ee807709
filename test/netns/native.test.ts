// The native addon: named namespaces like `ip netns add`, sockets born inside a namespace, and
// the calling thread back in its home namespace after every call, failures included.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { createRtNetlink } from 'netlink';
import { native } from '../../src/netns/native.js';
import { createNamedNetns, deleteNamedNetns, runInNetns } from '../../src/netns/index.js';
import { describeRoot } from '../helpers/root.js';
import { adoptNs, makeNs, uniqueName } from '../helpers/netns.js';
import { check, run } from '../helpers/exec.js';

describeRoot('native namespace switching', () => {
  it('creates a named namespace that ip netns sees, and deletes it idempotently', async () => {
    const name = uniqueName('nat');
    adoptNs(name);
    const p = createNamedNetns(name);
    expect(p).toBe(`/run/netns/${name}`);
    const listed = JSON.parse(await check(['ip', '-j', 'netns', 'list'])) as { name: string }[];
    expect(listed.map((n) => n.name)).toContain(name);
    // It is a separate namespace: only lo, and lo is down.
    const links = JSON.parse(await check(['ip', '-n', name, '-j', 'link'])) as { ifname: string; operstate: string }[];
    expect(links.map((l) => l.ifname)).toEqual(['lo']);
    expect(deleteNamedNetns(name)).toBe(true);
    expect(deleteNamedNetns(name)).toBe(false);
    const after = await run(['ip', 'netns', 'exec', name, 'true']);
    expect(after.code).not.toBe(0);
  });

  it('names an empty file where a namespace was expected, and says why it can be one', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-ns-'));
    const file = path.join(dir, 'made-under-ip-netns-exec');
    fs.writeFileSync(file, '');
    try {
      expect(() => runInNetns(file, () => 1)).toThrow(/it is a file, not a namespace file .*nsenter --net=PATH/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a duplicate name and leaves the first namespace intact', async () => {
    const ns = await makeNs('dup');
    expect(() => createNamedNetns(ns.name)).toThrow(/already exists/);
    expect(await ns.linkNames()).toEqual(['lo']);
  });

  it('returns to the home namespace after success, after a throwing callback and after a bad path', async () => {
    const ns = await makeNs('home');
    const home = native.currentNetns();
    const inside = runInNetns(ns.path, () => native.currentNetns());
    expect(inside).not.toBe(home);
    expect(native.currentNetns()).toBe(home);
    expect(() => runInNetns(ns.path, () => { throw new Error('boom'); })).toThrow('boom');
    expect(native.currentNetns()).toBe(home);
    let err: any;
    try {
      native.runIn('/run/netns/does-not-exist-cnmkit', () => 1);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'open' });
    expect(native.currentNetns()).toBe(home);
    expect(() => native.runIn('/etc/hostname', () => 1)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'setns' }));
    expect(native.currentNetns()).toBe(home);
  });

  it('opens a netlink socket inside a namespace that sees only that namespace', async () => {
    const ns = await makeNs('sock');
    await ns.sh(['ip', 'link', 'add', 'probe0', 'type', 'bridge']);
    const rt = runInNetns(ns.path, () => createRtNetlink());
    try {
      const names = (await rt.getLinks()).map((l) => l.attrs.ifname).sort();
      expect(names).toEqual(['lo', 'probe0']);
      const fd = native.setNetlinkOptions(rt.socket.address().port, { noEnobufs: true, extAck: true, strictCheck: true, receiveBuffer: 4 << 20 });
      expect(fd).toBeGreaterThan(2);
    } finally {
      rt.socket.close();
    }
    const fd = native.netlinkSocketIn(ns.path, 0);
    expect(fd).toBeGreaterThan(2);
    native.closeFd(fd);
  });

  it('answers a netlink request in one call, and times out when the kernel owes no answer', async () => {
    const ns = await makeNs('nlreq');
    await ns.sh(['ip', 'link', 'add', 'probe0', 'type', 'bridge']);
    const fd = native.netlinkSocketIn(ns.path, 0, { extAck: true });
    try {
      const port = native.netlinkBind(fd);
      expect(port).toBeGreaterThan(0);
      // RTM_GETLINK for probe0 by name: its link message, then the ACK (NLM_F_REQUEST | NLM_F_ACK).
      const getlink = (seq: number, flags: number): Buffer => {
        const name = Buffer.from('probe0\0');
        const attr = Buffer.alloc(4 + 8);
        attr.writeUInt16LE(4 + name.length, 0);
        attr.writeUInt16LE(3, 2); // IFLA_IFNAME
        name.copy(attr, 4);
        const msg = Buffer.alloc(16 + 16 + attr.length);
        msg.writeUInt32LE(msg.length, 0);
        msg.writeUInt16LE(18, 4); // RTM_GETLINK
        msg.writeUInt16LE(flags, 6);
        msg.writeUInt32LE(seq, 8);
        attr.copy(msg, 32);
        return msg;
      };
      const replies = native.netlinkRequest(fd, getlink(7, 0x1 | 0x4), 1000);
      const types = replies.flatMap((d) => {
        const out: number[] = [];
        for (let off = 0; off + 16 <= d.length; off += (d.readUInt32LE(off) + 3) & ~3) {
          expect(d.readUInt32LE(off + 8)).toBe(7);
          out.push(d.readUInt16LE(off + 4));
        }
        return out;
      });
      expect(types).toEqual([16, 2]); // RTM_NEWLINK, then NLMSG_ERROR 0 (the ACK)
      // Without NLM_F_ACK the link message comes but nothing ends the answer.
      const started = Date.now();
      expect(() => native.netlinkRequest(fd, getlink(8, 0x1), 100)).toThrow(expect.objectContaining({ code: 'ETIMEDOUT' }));
      expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    } finally {
      native.closeFd(fd);
    }
  });
});
