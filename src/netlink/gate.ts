// Admission of requests onto one netlink socket: ordinary requests may overlap (up to a bound),
// a dump runs alone. The `netlink` package breaks when a dump shares its socket with anything.
// First come, first served: a waiting dump holds back the requests queued after it.

interface Waiter {
  exclusive: boolean;
  start: () => void;
}

export class RequestGate {
  private inFlight = 0;
  private exclusiveActive = false;
  private readonly queue: Waiter[] = [];

  constructor(private readonly maxInFlight = 64) {
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) throw new RangeError('maxInFlight must be a positive integer');
  }

  /** Number of requests admitted and not yet released. */
  get active(): number {
    return this.inFlight;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /** Resolves when the request may go; exclusive for a dump. Pair with release(). */
  acquire(exclusive: boolean): Promise<void> {
    return new Promise((resolve) => {
      this.queue.push({ exclusive, start: resolve });
      this.pump();
    });
  }

  release(): void {
    if (this.inFlight === 0) throw new Error('RequestGate.release without acquire');
    this.inFlight -= 1;
    this.exclusiveActive = false;
    this.pump();
  }

  /** Admits at once when nothing waits and the rules allow; false otherwise. Pair with release(). */
  tryAcquire(exclusive: boolean): boolean {
    if (this.queue.length > 0 || this.exclusiveActive) return false;
    if (exclusive ? this.inFlight > 0 : this.inFlight >= this.maxInFlight) return false;
    this.inFlight += 1;
    this.exclusiveActive = exclusive;
    return true;
  }

  /** Runs fn once admitted, and releases whatever fn does. */
  async run<T>(exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    if (!this.tryAcquire(exclusive)) await this.acquire(exclusive);
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.exclusiveActive) {
      const head = this.queue[0] as Waiter;
      if (head.exclusive ? this.inFlight > 0 : this.inFlight >= this.maxInFlight) return;
      this.queue.shift();
      this.inFlight += 1;
      this.exclusiveActive = head.exclusive;
      head.start();
    }
  }
}
