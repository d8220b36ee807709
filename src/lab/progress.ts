// Progress of `lab up` and `lab down`: on a terminal, one line per stage that counts up in place
// and ends with its time, then a summary with the total time; elsewhere plain lines, one per
// finished stage; nothing with --quiet (errors still reach stderr through the caller). Stages
// that run at once (hosts side by side) are shown one after the other (Stages).
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

/**
 * Stages that overlap (each host goes through them in order, the hosts side by side), shown in
 * order as Progress shows one stage: a step of a later stage is counted at once and shown when
 * that stage's line begins. A stage ends when its count is full (a stage of 0 steps at once);
 * its time runs from the end of the stage before.
 */
export class Stages {
  private readonly done: number[];
  private at = -1;

  constructor(private readonly pr: Progress, private readonly list: Array<{ name: string; total: number; note?: () => string }>) {
    this.done = list.map(() => 0);
    this.advance();
  }

  step(name: string, n = 1): void {
    const i = this.list.findIndex((s) => s.name === name);
    if (i < 0) throw new Error(`progress: no stage ${name}`);
    this.done[i]! += n;
    if (i !== this.at) return;
    this.pr.step(n);
    this.advance();
  }

  private advance(): void {
    while (this.at < this.list.length && (this.at < 0 || this.done[this.at]! >= this.list[this.at]!.total)) {
      if (this.at >= 0) this.pr.end(this.list[this.at]!.note?.() ?? '');
      this.at++;
      const s = this.list[this.at];
      if (!s) return;
      this.pr.begin(s.name, s.total);
      if (this.done[this.at]! > 0) this.pr.step(this.done[this.at]);
    }
  }
}

export function seconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
