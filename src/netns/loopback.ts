// Brings up the loopback interface of a fresh namespace: one rtnetlink request on a socket
// opened inside it and closed at once (a kept socket would keep the namespace alive).
import { createRtNetlink } from 'netlink';
import { runInNetns } from './index.js';

/** Equivalent to: `ip -n NS link set lo up`. */
export async function loopbackUp(nsPath: string): Promise<void> {
  const rt = runInNetns(nsPath, () => createRtNetlink());
  try {
    await rt.setLink({ index: 1, flags: { up: true }, change: { up: true } });
  } finally {
    rt.socket.close();
  }
}
