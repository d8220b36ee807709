// What both kernel backends share beyond tagged rules: route_localnet on bridges whose published
// ports take loopback clients without a userland proxy.
import type { ToolRunner } from './exec.js';
import type { PortMapping } from './types.js';
import { familyOf } from '../ip/index.js';

function localnetKey(bridge: string): string {
  return `net/ipv4/conf/${bridge}/route_localnet`;
}

/**
 * Sets route_localnet=1 on the bridge of every IPv4 mapping without a userland proxy, so that
 * DNATed loopback traffic may leave through it. Returns an undo that restores the old values.
 * The setting is left in place when the ports go: other mappings may rely on it.
 */
export async function enableRouteLocalnet(runner: ToolRunner, mappings: PortMapping[]): Promise<() => Promise<void>> {
  const bridges = [...new Set(mappings.filter((m) => !m.userlandProxy && familyOf(m.containerIP) === 4).map((m) => m.bridge))];
  const changed: string[] = [];
  const undo = async (): Promise<void> => {
    for (const br of changed.reverse()) await runner.sysctl(localnetKey(br), '0');
  };
  try {
    for (const br of bridges) {
      if ((await runner.readSysctl(localnetKey(br))) === '1') continue;
      await runner.sysctl(localnetKey(br), '1');
      changed.push(br);
    }
  } catch (err) {
    await undo().catch(() => undefined);
    throw err;
  }
  return undo;
}
