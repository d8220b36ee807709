// Kernel features a test may need that a machine can lack (vlan, netem, dummy…): the one skip the
// suite allows as root. `skipUnlessKernelHas(ctx, '8021q')` in a test (or in a beforeEach) skips it
// with the reason and marks it (task meta `kernelFeature`), so scripts/test names it and does not
// count it as a failure. What the kernel has is read from its config (/proc/config.gz or
// /boot/config-RELEASE); a module (=m) counts when it is loaded or modprobe can find it.
// Limits: when no config is readable the test runs (and fails if the feature is missing).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import zlib from 'node:zlib';
import type { TestContext } from 'vitest';

/** Each feature by the name of its module, with its config symbol (CONFIG_…). Add rows as tests need them. */
const FEATURES = {
  '8021q': 'VLAN_8021Q',
  dummy: 'DUMMY',
  sch_netem: 'NET_SCH_NETEM',
  macvlan: 'MACVLAN',
  ipvlan: 'IPVLAN',
  vxlan: 'VXLAN',
  bonding: 'BONDING',
  veth: 'VETH',
  bridge: 'BRIDGE',
} as const;

export type KernelFeature = keyof typeof FEATURES;

/** `CONFIG_X=y` lines as X → y (and `# CONFIG_X is not set` as X → n). */
export function parseKernelConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const set = /^CONFIG_(\w+)=(.*)$/.exec(line);
    if (set) out.set(set[1]!, set[2]!);
    const unset = /^# CONFIG_(\w+) is not set$/.exec(line);
    if (unset) out.set(unset[1]!, 'n');
  }
  return out;
}

let cached: Map<string, string> | null | undefined;

/** This kernel's config, or null when none is readable. */
function runningConfig(): Map<string, string> | null {
  if (cached !== undefined) return cached;
  cached = null;
  try {
    cached = parseKernelConfig(zlib.gunzipSync(fs.readFileSync('/proc/config.gz')).toString());
  } catch {
    try {
      cached = parseKernelConfig(fs.readFileSync(`/boot/config-${os.release()}`, 'utf8'));
    } catch {
      cached = null;
    }
  }
  return cached;
}

function moduleLoadable(module: string): boolean {
  if (fs.existsSync(`/sys/module/${module}`)) return true;
  return spawnSync('modprobe', ['-n', '-q', module], { stdio: 'ignore' }).status === 0;
}

/**
 * Why the kernel lacks `feature`, or undefined when it has it (or when its config cannot be read).
 * `config` and `loadable` stand in for this machine's in unit tests.
 */
export function kernelLacks(feature: KernelFeature, config = runningConfig(), loadable = moduleLoadable): string | undefined {
  if (config === null) return undefined;
  const symbol = FEATURES[feature];
  const value = config.get(symbol) ?? 'n';
  if (value === 'y') return undefined;
  if (value === 'm') return loadable(feature) ? undefined : `CONFIG_${symbol}=m but the module ${feature} is not available`;
  return `CONFIG_${symbol} is not set in this kernel`;
}

/** Skips the current test, named as an allowed kernel skip, when the kernel lacks `feature`. */
export function skipUnlessKernelHas(ctx: TestContext, feature: KernelFeature): void {
  const why = kernelLacks(feature);
  if (why === undefined) return;
  ctx.task.meta.kernelFeature = feature;
  ctx.skip(`kernel lacks ${feature}: ${why}`);
}

declare module 'vitest' {
  interface TaskMeta {
    /** Set on a test skipped because the kernel lacks this feature (an allowed skip). */
    kernelFeature?: string;
  }
}
