// One privileged run at a time on a machine: the host-unchanged check compares every namespace,
// link and rule of the machine, so two test runs (or a test run and a benchmark) at once would
// see each other's objects. A lock directory under /run holds the owner's pid; a lock whose owner
// is dead is taken over. No test-runner imports (benchmarks use it too).
// Usage as a command: `npx tsx test/helpers/kernel-lock.ts CMD ARG…` runs CMD holding the lock;
// runs inside CMD (a vitest run, a benchmark) see CNMKIT_KERNEL_LOCK and do not wait for it.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const LOCK_DIR = '/run/lock/cnmkit-kernel-tests';

function readOwner(): string | undefined {
  try {
    return fs.readFileSync(path.join(LOCK_DIR, 'pid'), 'utf8');
  } catch {
    return undefined;
  }
}

function ownerAlive(): boolean {
  try {
    const pid = Number(fs.readFileSync(path.join(LOCK_DIR, 'pid'), 'utf8'));
    if (!Number.isInteger(pid) || pid <= 0) return false;
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists; ENOENT (no pid file yet): its owner is still writing it.
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EPERM' || code === 'ENOENT';
  }
}

/** Waits until the lock is this process's; returns the function that releases it. */
export async function acquireKernelLock(opts: { pid?: number; onWait?: (owner: string) => void } = {}): Promise<() => void> {
  const pid = opts.pid ?? process.pid;
  const inherited = process.env.CNMKIT_KERNEL_LOCK;
  if (inherited && ownerAlive() && readOwner() === inherited) return () => undefined;
  fs.mkdirSync(path.dirname(LOCK_DIR), { recursive: true });
  let told = false;
  let staleSince = 0;
  for (;;) {
    try {
      fs.mkdirSync(LOCK_DIR);
      fs.writeFileSync(path.join(LOCK_DIR, 'pid'), String(pid));
      return () => fs.rmSync(LOCK_DIR, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (!ownerAlive()) {
      // A lock without a pid file for 2 s was left by a process that died while taking it.
      staleSince ||= Date.now();
      if (fs.existsSync(path.join(LOCK_DIR, 'pid')) || Date.now() - staleSince > 2000) {
        fs.rmSync(LOCK_DIR, { recursive: true, force: true });
        staleSince = 0;
        continue;
      }
    } else staleSince = 0;
    if (!told) {
      told = true;
      opts.onWait?.(readOwner() ?? '?');
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  if (argv.length === 0) {
    console.error('usage: kernel-lock.ts CMD [ARG…]');
    process.exit(2);
  }
  const release = await acquireKernelLock({ onWait: (o) => console.error(`kernel-lock: waiting for pid ${o}`) });
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit', env: { ...process.env, CNMKIT_KERNEL_LOCK: String(process.pid) } });
  const code = await new Promise<number>((resolve) => {
    child.on('error', (err) => {
      console.error(`kernel-lock: ${err.message}`);
      resolve(127);
    });
    child.on('exit', (c, s) => resolve(c ?? (s ? 128 : 1)));
  });
  release();
  process.exit(code);
}
