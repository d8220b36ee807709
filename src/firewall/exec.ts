// Runs the firewall's tools (iptables-restore, nft, sysctl) with argument arrays, inside a given
// network namespace through `nsenter --net=PATH` or in the caller's own. No shell is involved.
import { spawn } from 'node:child_process';
import { CnmkitError } from '../errors.js';

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class ToolRunner {
  constructor(
    readonly netnsPath?: string,
    private readonly timeoutMs = 30_000,
  ) {}

  /** The argv actually spawned: prefixed with nsenter when a namespace was given. */
  argv(cmd: string[]): string[] {
    return this.netnsPath === undefined ? cmd : ['nsenter', `--net=${this.netnsPath}`, ...cmd];
  }

  /** Runs cmd; resolves with its exit code and output (never rejects on a non-zero exit). */
  run(cmd: string[], input?: string): Promise<ToolResult> {
    const [file, ...args] = this.argv(cmd);
    return new Promise((resolve, reject) => {
      const child = spawn(file as string, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), this.timeoutMs);
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new CnmkitError('ERR_FIREWALL_TOOL', 'unavailable', `${cmd[0]}: cannot run: ${err.message}`, { cause: err }));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(input);
    });
  }

  /** Like run, but throws a CnmkitError carrying the tool's own message unless it exits 0. */
  async check(cmd: string[], input?: string): Promise<string> {
    const r = await this.run(cmd, input);
    if (r.code !== 0) throw toolError(cmd, r);
    return r.stdout;
  }

  /** Writes one sysctl under /proc/sys/net (slash form, so interface names may hold dots). */
  async sysctl(key: string, value: string): Promise<void> {
    await this.check(['sysctl', '-q', '-w', `${key}=${value}`]);
  }

  async readSysctl(key: string): Promise<string> {
    return (await this.check(['sysctl', '-n', key])).trim();
  }
}

export function toolError(cmd: string[], r: ToolResult): CnmkitError {
  const text = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(0, 6).join(' | ');
  return new CnmkitError('ERR_FIREWALL', 'internal', `${cmd.join(' ')} exited ${r.code}: ${text}`);
}
