// Runs the firewall's tools (iptables-restore, nft, sysctl) with argument arrays, inside a given
// network namespace through `nsenter --net=PATH` or in the caller's own. No shell is involved, and
// no inherited PATH: each tool is found once, at start, in a fixed list of system directories.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CnmkitError } from '../errors.js';

/** Where tools are looked for, in order (never the PATH the daemon was started with). */
export const SYSTEM_DIRS: readonly string[] = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

/** Tool name → absolute path; tools that were not found are absent. */
export type ToolPaths = Readonly<Record<string, string>>;

/**
 * The first executable file named like each tool in dirs. Symlinks are kept as they are: the
 * multi-call binaries behind iptables tell their tools apart by the name they are run under.
 */
export function resolveTools(names: readonly string[], dirs: readonly string[] = SYSTEM_DIRS): ToolPaths {
  const found: Record<string, string> = {};
  for (const name of names) {
    for (const dir of dirs) {
      const file = path.join(dir, name);
      try {
        if (!fs.statSync(file).isFile()) continue;
        fs.accessSync(file, fs.constants.X_OK);
      } catch {
        continue;
      }
      found[name] = file;
      break;
    }
  }
  return found;
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class ToolRunner {
  constructor(
    /** Absolute paths of the tools this runner may run (from resolveTools). */
    readonly tools: ToolPaths,
    readonly netnsPath?: string,
    private readonly timeoutMs = 30_000,
  ) {}

  /** The absolute path of a tool; throws when it was not found at start. */
  private pathOf(tool: string): string {
    const file = this.tools[tool];
    if (file === undefined) throw new CnmkitError('ERR_FIREWALL_TOOL', 'unavailable', `${tool}: not found in ${SYSTEM_DIRS.join(', ')}`);
    return file;
  }

  /** The argv actually spawned: absolute paths, prefixed with nsenter when a namespace was given. */
  argv(cmd: string[]): string[] {
    const [tool, ...args] = cmd;
    const own = [this.pathOf(tool as string), ...args];
    return this.netnsPath === undefined ? own : [this.pathOf('nsenter'), `--net=${this.netnsPath}`, ...own];
  }

  /** Runs cmd; resolves with its exit code and output (never rejects on a non-zero exit). */
  run(cmd: string[], input?: string): Promise<ToolResult> {
    return new Promise((resolve, reject) => {
      const [file, ...args] = this.argv(cmd);
      // The tools' own children (modprobe, …) search the system directories too.
      const child = spawn(file as string, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PATH: SYSTEM_DIRS.join(':') } });
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
