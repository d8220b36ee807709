// Kernel switches under /proc/sys, read and written in the calling thread's network namespace
// (net.* keys are per namespace; wrap a call in runInNetns for another). Keys in slash form, so
// that interface names may hold dots. A key the kernel lacks (IPv6 disabled at boot, no bridge
// module) reads as undefined and is never written.
import fs from 'node:fs';

/** The value of /proc/sys/KEY, trimmed; undefined when the kernel has no such key. */
export function getSysctl(key: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/sys/${key}`, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Sets KEY to value unless it has it already; true when it was written. Equivalent to `sysctl -w KEY=VALUE`. */
export function ensureSysctl(key: string, value: string): boolean {
  const now = getSysctl(key);
  if (now === undefined || now === value) return false;
  fs.writeFileSync(`/proc/sys/${key}`, value);
  return true;
}

/** Writes KEY without reading it first (a link just made: its state is known); false when the kernel has no such key. */
export function setSysctl(key: string, value: string): boolean {
  try {
    fs.writeFileSync(`/proc/sys/${key}`, value);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
