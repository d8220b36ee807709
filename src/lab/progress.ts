// Progress of `lab up` and `lab down`: on a terminal, one line per stage that counts up in place
// and ends with its time, then a summary with the total time; elsewhere plain lines, one per
// finished stage; nothing with --quiet (errors still reach stderr through the caller).
export interface ProgressOptions {
  quiet?: boolean;
  /** Defaults to process.stdout.isTTY. */
  tty?: boolean;
  write?: (s: string) => void;
}

export class Progress {
  private readonly tty: boolean;
  private readonly write: (s: string) => void;
  private readonly started = performance.now();
  private stage?: { name: string; total: number; done: number; at: number };

  constructor(private readonly opts: ProgressOptions = {}) {
    this.tty = opts.tty ?? process.stdout.isTTY === true;
    this.write = opts.write ?? ((s) => process.stdout.write(s));
  }

  /** Starts a stage of total steps (0: a stage without a count). */
  begin(name: string, total = 0): void {
    this.end();
    this.stage = { name, total, done: 0, at: performance.now() };
    this.draw();
  }

  /** One more step of the current stage done. */
  step(n = 1): void {
    if (!this.stage) return;
    this.stage.done += n;
    this.draw();
  }

  /** Ends the current stage, with a note after its count. */
  end(note = ''): void {
    const s = this.stage;
    if (!s) return;
    this.stage = undefined;
    if (this.opts.quiet) return;
    const line = `${this.label(s)}${note ? ` ${note}` : ''} (${seconds(performance.now() - s.at)})`;
    this.write(this.tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
  }

  /** A line of its own (warnings, results), outside any stage. */
  note(text: string): void {
    if (this.opts.quiet) return;
    if (this.tty && this.stage) this.write('\r\x1b[2K');
    this.write(`${text}\n`);
    this.draw();
  }

  /** The closing line with the total time. */
  summary(text: string): void {
    this.end();
    if (!this.opts.quiet) this.write(`${text} in ${seconds(performance.now() - this.started)}\n`);
  }

  elapsedMs(): number {
    return performance.now() - this.started;
  }

  private label(s: { name: string; total: number; done: number }): string {
    return s.total > 0 ? `${s.name} ${s.done}/${s.total}` : s.name;
  }

  private draw(): void {
    if (this.opts.quiet || !this.tty || !this.stage) return;
    this.write(`\r\x1b[2K${this.label(this.stage)} …`);
  }
}

export function seconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
