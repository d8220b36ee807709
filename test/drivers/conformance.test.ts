// The driver conformance suite: every driver runs the same tests with its fixture
// (test/drivers/fixtures/NAME.ts, described in ./fixture.ts) in throwaway namespaces — one that
// stands for the daemon's, one for a sandbox. Kernel state is read with iproute2 and nft, never
// through the code under test; failures are injected through the DriverContext only.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CheckItem, Driver } from '../../src/contract/driver.js';
import { CnmkitError } from '../../src/errors.js';
import { describeRoot } from '../helpers/root.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import type { DriverFixture } from './fixture.js';
import { bench, connect, createNetwork, disconnect, InjectedFailure, kernelState, records, type Bench } from './harness.js';
import { kernelTests } from './kernel-tests.js';

const here = import.meta.dirname;
const repo = path.resolve(here, '../..');
const fixtureNames = fs.readdirSync(path.join(here, 'fixtures')).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort();
const fixtures: DriverFixture[] = [];
for (const name of fixtureNames) fixtures.push(((await import(`./fixtures/${name}.ts`)) as { fixture: DriverFixture }).fixture);

/** Runs op with the Nth context call failing, for N = 1, 2, … until op succeeds; each failure must leave `state()` as it was. */
async function failEachStep(b: Bench, state: () => Promise<string[]>, op: () => Promise<void>, undo: () => Promise<void>): Promise<string[]> {
  const before = await state();
  for (let n = 1; n < 200; n++) {
    b.faults.arm(n);
    let failure: unknown;
    try {
      await op();
    } catch (err) {
      failure = err;
    }
    const calls = [...b.faults.calls];
    b.faults.disarm();
    if (failure === undefined) {
      await undo();
      expect(await state(), 'undoing the operation that succeeded left kernel state behind').toEqual(before);
      return calls;
    }
    const injected = failure instanceof InjectedFailure || (failure as { cause?: unknown }).cause instanceof InjectedFailure;
    expect(injected, `step ${n} failed with something other than the injected failure: ${(failure as Error).message}`).toBe(true);
    expect(await state(), `a failure at step ${n} (${calls[n - 1]}) left kernel state behind`).toEqual(before);
  }
  throw new Error('the operation never succeeded in 200 steps');
}

function conformance(fixture: DriverFixture): void {
  let host: TestNs;
  let sandbox: TestNs | undefined;
  let b: Bench;
  let d: Driver;
  let env: { close(): Promise<void> } | undefined;

  if (fixture.env) {
    beforeAll(() => fixture.env!.start(), 60_000);
    afterAll(() => fixture.env!.stop());
  }

  beforeEach(async () => {
    host = await makeNs(`h${fixture.name}`.slice(0, 8));
    sandbox = fixture.sandbox === 'own' ? await makeNs(`s${fixture.name}`.slice(0, 8)) : undefined;
    b = await bench(host);
    if (fixture.env) {
      const made = await fixture.env.context(host);
      Object.assign(b.ctx, made.extra);
      env = made;
    }
    d = fixture.make(b.ctx);
  });

  afterEach(async () => {
    await env?.close();
    env = undefined;
    b.close();
  });

  /** The host namespace (with its firewall) and the sandbox's, as one list. */
  const everything = async (): Promise<string[]> => {
    const [h, s] = await Promise.all([kernelState(host, true), sandbox ? kernelState(sandbox, false) : []]);
    return [...h.map((l) => `host ${l}`), ...s.map((l) => `sandbox ${l}`)];
  };

  it('is the driver its fixture names, with a fixture that has bad options', () => {
    expect(d.name, `fixtures/${fixture.name}.ts makes a driver named ${d.name}`).toBe(fixture.name);
    expect(fixture.bad.length, `fixtures/${fixture.name}.ts: give at least one bad option in "bad"`).toBeGreaterThan(0);
  });

  it('parses without side effects and refuses each bad option, naming its field', async () => {
    const before = await everything();
    b.faults.arm(0);
    d.parse({ name: 'good', ...fixture.network.input });
    for (const bad of fixture.bad) {
      let err: unknown;
      try {
        d.parse({ name: 'bad', ...fixture.network.input, ...bad.input });
      } catch (e) {
        err = e;
      }
      expect(err, `parse accepted ${bad.about}`).toBeInstanceOf(CnmkitError);
      expect((err as CnmkitError).field, `parse refused ${bad.about} with: ${(err as Error).message}`).toBe(bad.field);
    }
    expect(b.faults.calls, 'parse called the kernel through its context').toEqual([]);
    expect(await everything()).toEqual(before);
  });

  it('creates and deletes network, endpoint and join, twice over, each teardown twice; check is clean when all is there', async () => {
    const before = await everything();
    for (const round of [1, 2]) {
      const { net, sb, ep } = records(fixture, sandbox, `r${round}`);
      await createNetwork(d, fixture, net);
      await connect(d, b.ctx, net, ep, sb);
      const items: CheckItem[] = await d.check(net, net.config, [{ ep, sb }]);
      expect(items, `round ${round}: check of a network just made`).toEqual([]);
      if (fixture.kernel) {
        const links = (await host.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname);
        expect(links).toEqual(expect.arrayContaining(fixture.kernel.networkDevices(net, net.config)));
        if (sandbox && ep.ifname) {
          const inside = await sandbox.ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(['addr', 'show', 'dev', ep.ifname]);
          const cidrs = inside[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
          expect(cidrs).toEqual(expect.arrayContaining([fixture.endpoint.ipv4, fixture.endpoint.ipv6].filter((c) => c !== undefined)));
        }
      } else {
        expect(await everything(), 'a driver without kernel objects changed the kernel').toEqual(before);
      }
      for (const _ of [1, 2]) await disconnect(d, net, ep, sb);
      for (const _ of [1, 2]) await d.deleteNetwork(net, net.config);
      expect(await everything(), `round ${round}: teardown left kernel state behind`).toEqual(before);
    }
  });

  it('leaves nothing when any step of creating a network fails', async () => {
    const { net } = records(fixture, sandbox);
    const calls = await failEachStep(b, everything, () => createNetwork(d, fixture, net), () => d.deleteNetwork(net, net.config));
    if (fixture.kernel) expect(calls.length, 'no call went through the context: does the driver use ctx.netlink, ctx.firewall and ctx.sysctl?').toBeGreaterThan(0);
  });

  it('leaves nothing when any step of creating and joining an endpoint fails', async () => {
    const { net, sb, ep } = records(fixture, sandbox);
    await createNetwork(d, fixture, net);
    let cur = ep;
    const attempt = (): Promise<void> => {
      cur = { ...ep, driverData: {} };
      return connect(d, b.ctx, net, cur, sb);
    };
    const calls = await failEachStep(b, everything, attempt, () => disconnect(d, net, cur, sb));
    if (fixture.kernel) expect(calls.length).toBeGreaterThan(0);
    await d.deleteNetwork(net, net.config);
  });

  if (fixture.kernel) kernelTests(fixture, () => ({ host, sandbox, b, d }), everything);
}

/**
 * Drivers known not to run the suite yet, each with what it lacks: a known gap written down, not
 * a pass. The test fails when one of them gets a fixture and is still listed here, and when any
 * other driver has none.
 */
const NOT_YET: Record<string, string> = {};

describeRoot('driver conformance', () => {
  it('has a fixture for every driver under drivers/, except the ones listed as not passing it yet', () => {
    const drivers = fs.readdirSync(path.join(repo, 'drivers'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    const missing = drivers.filter((name) => !fixtures.some((f) => f.name === name));
    for (const [name, why] of Object.entries(NOT_YET)) console.warn(`driver conformance: ${name} does not run the suite yet: ${why}`);
    expect(missing, `add test/drivers/fixtures/NAME.ts (see test/drivers/fixture.ts) for: ${missing.join(', ')}`).toEqual(Object.keys(NOT_YET));
  });

  for (const fixture of fixtures) describe(`driver ${fixture.name}`, () => conformance(fixture));
});
