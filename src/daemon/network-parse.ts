// The parse step of every network driver the daemon registers, by name, run with no daemon: a front
// end (the lab) checks a network's driver and options before it starts anything. Pure; the same
// functions the drivers' own `parse` is (test/unit/network-parse.test.ts holds them to it).
import { parseNoOptions, type NetworkParseInput } from '../contract/driver.js';
import { parseBridgeConfig } from '../../drivers/bridge/config.js';
import { parseMacvlanConfig } from '../../drivers/macvlan/config.js';
import { parseOverlayConfig } from '../../drivers/overlay/config.js';

export const NETWORK_PARSERS: Readonly<Record<string, (input: NetworkParseInput) => unknown>> = {
  bridge: parseBridgeConfig,
  host: (input) => parseNoOptions('host', input),
  macvlan: parseMacvlanConfig,
  null: (input) => parseNoOptions('null', input),
  overlay: parseOverlayConfig,
};
