// The harness never hides a leak of the code under test: a namespace registered with adoptNs that
// is still there after the test fails that test (then goes), and a namespace of an unnamed sandbox
// (sb-<hex>) left after a TestDaemon stops fails its cleanup. The leaks are made here on purpose
// with iproute2, standing for what cnmkit would have forgotten.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { afterAll, expect, it } from 'vitest';
import { check } from '../helpers/exec.js';
import { adoptNs, makeNs, uniqueName } from '../helpers/netns.js';
import { TestDaemon } from '../helpers/daemon.js';
import { describeRoot } from '../helpers/root.js';

const forgotten = uniqueName('forgotten');
let made = false;

describeRoot('the harness and leaks of the code under test', () => {
  afterAll(async () => {
    await check(['ip', 'netns', 'del', forgotten]).catch(() => undefined);
  });

  // `fails`: the afterEach of test/helpers/netns.ts must turn this test red.
  it.fails('fails a test that leaves a namespace it adopted', async () => {
    adoptNs(forgotten);
    await check(['ip', 'netns', 'add', forgotten]);
    made = true;
  });

  it('removed that namespace after failing the test', () => {
    expect(made).toBe(true);
    expect(fs.existsSync(`/run/netns/${forgotten}`)).toBe(false);
  });

  it('passes a test whose adopted namespace is gone by its end', async () => {
    const name = uniqueName('removed');
    adoptNs(name);
    await check(['ip', 'netns', 'add', name]);
    await check(['ip', 'netns', 'del', name]);
  });

  it('fails a daemon\'s cleanup that leaves a namespace of an unnamed sandbox, and removes it', async () => {
    const daemon = new TestDaemon(await makeNs('host'));
    await daemon.start();
    const unnamed = `sb-${randomBytes(6).toString('hex')}`;
    await check(['ip', 'netns', 'add', unnamed]);
    try {
      await expect(daemon.cleanup()).rejects.toThrow(new RegExp(`namespaces of unnamed sandboxes .*${unnamed}`));
      expect(fs.existsSync(`/run/netns/${unnamed}`)).toBe(false);
    } finally {
      await check(['ip', 'netns', 'del', unnamed]).catch(() => undefined);
    }
  });
});
