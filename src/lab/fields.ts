// Small readers shared by the two file layouts: values as strings, NODE:IFACE link ends.
import type { LinkEnd } from './model.js';

export const str = (v: unknown): string => String(v);

export const strMap = (m: unknown): Record<string, string> =>
  Object.fromEntries(Object.entries((m as Record<string, unknown> | undefined) ?? {}).map(([k, v]) => [k, str(v)]));

/** "r1:eth1" (and its address) as a link end. */
export function endOf(text: string, address: string | null | undefined): LinkEnd {
  const i = text.indexOf(':');
  return { node: text.slice(0, i), ifname: text.slice(i + 1), ...(address ? { address } : {}) };
}
