// BENCH_LAB_TIMELINE=1 for `npm run bench -- lab`: where a multi-host lab's bring-up time goes,
// read after `lab up` returned and before `down` — when etcd and each daemon were spawned (their
// /proc start time), when etcd said it serves clients (its log), each daemon's start stages
// (CNMKIT_TRACE_START=1, set by the bench with this option), when it registered in etcd, made its
// overlay networks and its last sandbox (its log), each in ms from the start of `lab up`; and the
// CPU each of these processes used so far (user + system): the bring-up is bound by CPU on a busy
// machine. Limits: times from /proc are in clock ticks (10 ms); etcd's log time is read as local
// time; the CPU of `lab up` itself is not counted here (it has exited).
import fs from 'node:fs';
import path from 'node:path';

interface Proc { pid: number }
interface LabStateFile {
  plan: { hosts: Array<{ name: string; log: string }>; etcd?: { log: string; managed: boolean } };
  daemons: Record<string, Proc>;
  etcd?: Proc;
}

/** Linux's USER_HZ: /proc times are in these ticks. */
const TICKS_PER_S = 100;

function statFields(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The process's start (ms since the epoch) and CPU used so far (s), or undefined once gone. */
function procTimes(pid: number): { startMs: number; cpuS: number } | undefined {
  const f = statFields(pid);
  if (!f) return undefined;
  const uptimeS = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  const bootMs = Date.now() - uptimeS * 1000;
  return { startMs: bootMs + (Number(f[19]) / TICKS_PER_S) * 1000, cpuS: (Number(f[11]) + Number(f[12])) / TICKS_PER_S };
}

function lines(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n');
  } catch {
    return [];
  }
}

/** The timeline of the lab's last bring-up as lines `  MS event`, then the CPU line. */
export function labTimeline(runDir: string, lab: string, upStartMs: number, upEndMs: number): string[] {
  const s = JSON.parse(fs.readFileSync(path.join(runDir, lab, 'state.json'), 'utf8')) as LabStateFile;
  const events: Array<[number, string]> = [[upEndMs, 'lab up returned']];
  const cpu: string[] = [];
  if (s.etcd && s.plan.etcd?.managed) {
    const t = procTimes(s.etcd.pid);
    if (t) {
      events.push([t.startMs, 'etcd spawned']);
      cpu.push(`etcd ${t.cpuS.toFixed(2)}`);
    }
    const serving = lines(s.plan.etcd.log).reverse().find((l) => l.includes('ready to serve client requests'));
    const at = serving && /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d+)/.exec(serving);
    if (at) events.push([new Date(`${at[1]}T${at[2]!.slice(0, 12)}`).getTime(), 'etcd serving']);
  }
  for (const h of s.plan.hosts) {
    const p = s.daemons[h.name];
    const t = p && procTimes(p.pid);
    if (!t) continue;
    events.push([t.startMs, `${h.name} spawned`]);
    cpu.push(`${h.name} ${t.cpuS.toFixed(2)}`);
    let lastSandbox: number | undefined;
    for (const line of lines(h.log)) {
      if (!line.startsWith('{')) continue;
      const r = JSON.parse(line) as { time: number; pid: number; msg: string; driver?: string; network?: string; startStages?: Record<string, number> };
      if (r.pid !== p.pid) continue;
      if (r.startStages) for (const [stage, ms] of Object.entries(r.startStages)) events.push([t.startMs + ms, `${h.name} ${stage}`]);
      if (r.msg === 'cluster: host registered') events.push([r.time, `${h.name} registered in etcd`]);
      if (r.msg === 'network created' && r.driver === 'overlay') events.push([r.time, `${h.name} overlay network ${r.network} made`]);
      if (r.msg === 'sandbox created') lastSandbox = r.time;
    }
    if (lastSandbox !== undefined) events.push([lastSandbox, `${h.name} last sandbox made`]);
  }
  return [
    ...events.sort((a, b) => a[0] - b[0]).map(([t, what]) => `  ${String(Math.round(t - upStartMs)).padStart(6)} ${what}`),
    `  CPU so far (s): ${cpu.join(', ')}`,
  ];
}
