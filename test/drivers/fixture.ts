// What a driver's fixture tells the conformance suite (test/drivers/conformance.test.ts): how to
// make the driver, what good and bad options are, and what a good network and endpoint look like
// in the kernel. Adding a driver = adding test/drivers/fixtures/NAME.ts that exports `fixture`.
import type { Driver, DriverContext, NetworkParseInput } from '../../src/contract/driver.js';
import type { NetworkRecord, SubnetRecord } from '../../src/core/model.js';
import type { TestNs } from '../helpers/netns.js';

export interface BadOptions {
  /** What the test is about, for its name: "an unknown option", "an MTU of 10". */
  about: string;
  input: Partial<NetworkParseInput>;
  /** The field the error must name (CnmkitError.field). */
  field: string;
}

/** The kernel objects of a driver that makes some; null and host make none. */
export interface KernelShape {
  /** Devices the network itself owns in the daemon's (host) namespace, by name: a bridge, a VXLAN device, … */
  networkDevices(net: NetworkRecord, config: unknown): string[];
  /** An address the network itself puts on one of its devices (the bridge's gateway), if any. */
  networkAddress?(net: NetworkRecord, config: unknown): { dev: string; cidr: string } | undefined;
  /** True when the network installs firewall rules tagged with its id. */
  firewall: boolean;
  /** True when the driver can recreate a deleted network device (Driver.restore). */
  restores: boolean;
  /** True when the driver sweeps its own orphans at start (Driver.sweep). */
  sweeps: boolean;
}

/** What a driver needs beyond the suite's context (overlay: a cluster store and a VTEP address). */
export interface FixtureEnv {
  /** Once before the driver's tests (e.g. starts etcd). */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Before each test, with its host namespace: what the context gets beyond the suite's, and how to undo it. */
  context(host: TestNs): Promise<{ extra: Partial<DriverContext>; close(): Promise<void> }>;
}

export interface DriverFixture<Config = unknown> {
  /** The driver's name, as registered (and as its folder under drivers/). */
  name: string;
  /** Makes the driver with the suite's context, as its registration line in the daemon does. */
  make(ctx: DriverContext): Driver<Config>;
  /**
   * A good network: its parse input and, for drivers with addresses, its subnets as IPAM would
   * give them (inside 198.18.0.0/15: the suite's namespaces are private, but keep to the range).
   */
  network: { input: Omit<NetworkParseInput, 'name'>; ipv4?: SubnetRecord[]; ipv6?: SubnetRecord[] };
  /** An endpoint's addresses on that network (CIDRs with the subnet's prefix), if it has any. */
  endpoint: { ipv4?: string; ipv6?: string };
  /** At least one bad parse input, each with the field its error must name. */
  bad: BadOptions[];
  /** Where a sandbox that joins it lives: a namespace of its own, or the host's namespace (host). */
  sandbox: 'own' | 'host';
  env?: FixtureEnv;
  /** Absent: the driver makes no kernel objects at all (the suite then proves it changes nothing). */
  kernel?: KernelShape;
}
