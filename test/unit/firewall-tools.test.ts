// The firewall's tools are found once, in system directories, never through the PATH the daemon
// inherited: a look-alike earlier in PATH is never run, and the paths chosen are logged.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFirewall, type FirewallLogger } from '../../src/firewall/index.js';
import { resolveTools, SYSTEM_DIRS, ToolRunner } from '../../src/firewall/exec.js';

let fakeDir: string;
let marker: string;
const savedPath = process.env.PATH;

/** The system directory that holds tool, found here without the code under test. */
function systemCopy(tool: string): string | undefined {
  return ['/usr/sbin', '/sbin', '/usr/bin', '/bin'].map((d) => path.join(d, tool)).find((f) => fs.existsSync(f));
}

beforeEach(() => {
  fakeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-fake-tools-'));
  marker = path.join(fakeDir, 'ran');
  for (const tool of ['nft', 'nsenter', 'iptables-restore', 'sysctl']) {
    fs.writeFileSync(path.join(fakeDir, tool), `#!/bin/sh\necho fake ${tool}\ntouch ${marker}\n`, { mode: 0o755 });
  }
  process.env.PATH = `${fakeDir}:${savedPath}`;
});
afterEach(() => {
  process.env.PATH = savedPath;
  fs.rmSync(fakeDir, { recursive: true, force: true });
});

describe('firewall tools', () => {
  it('runs the system copy of a tool even when an inherited PATH names another one first', async () => {
    const nft = systemCopy('nft');
    if (!nft) throw new Error('this test needs nft installed in a system directory (scripts/setup installs it)');
    const tools = resolveTools(['nft', 'no-such-tool-x']);
    expect(tools).toEqual({ nft });
    const runner = new ToolRunner(tools);
    const r = await runner.run(['nft', '--version']);
    expect(r.stdout).toMatch(/^nftables v\d/);
    expect(fs.existsSync(marker)).toBe(false);
    await expect(runner.run(['no-such-tool-x'])).rejects.toThrow('no-such-tool-x: not found in /usr/sbin, /sbin, /usr/bin, /bin');
    await expect(runner.run(['nsenter'])).rejects.toThrow(/nsenter: not found/);
  });

  it('prefixes nsenter by its absolute path too, and logs every path at start', async () => {
    const runner = new ToolRunner(resolveTools(['nsenter', 'nft']), '/run/netns/x');
    expect(runner.argv(['nft', 'list', 'tables'])).toEqual([systemCopy('nsenter'), '--net=/run/netns/x', systemCopy('nft'), 'list', 'tables']);
    const logged: { obj: object; msg?: string }[] = [];
    const log: FirewallLogger = { debug() {}, info: (obj, msg) => logged.push({ obj, ...(msg ? { msg } : {}) }), warn() {}, error() {} };
    await createFirewall({ backend: 'iptables', logger: log });
    const entry = logged.find((l) => l.msg === 'firewall tools');
    const tools = (entry?.obj as { tools: Record<string, string> }).tools;
    expect(tools['iptables-restore']).toBe(systemCopy('iptables-restore'));
    expect(tools.nsenter).toBe(systemCopy('nsenter'));
    for (const file of Object.values(tools)) expect(SYSTEM_DIRS).toContain(path.dirname(file));
    expect(fs.existsSync(marker)).toBe(false);
  });
});
