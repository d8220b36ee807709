// Output for people and for programs: aligned tables for listings, JSON with --format json, and
// published ports written the way docker writes them.

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('   ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A published port as the API returns it (src/portmap's resolved PortSpec). */
export interface PublishedPort {
  proto: string;
  hostIP?: string;
  hostPort: number;
  hostPortEnd: number;
  containerPort: number;
  containerPortEnd: number;
}

/** A host address as docker prints it: unset is every address (0.0.0.0), IPv6 in brackets. */
export function hostAddress(ip: string | undefined): string {
  if (ip === undefined || ip === '') return '0.0.0.0';
  return ip.includes(':') ? `[${ip}]` : ip;
}

function span(start: number, end: number): string {
  return start === end ? String(start) : `${start}-${end}`;
}

/** `0.0.0.0:49153->80/tcp`, as `docker ps` shows a published port or range. */
export function mappingText(p: PublishedPort): string {
  return `${hostAddress(p.hostIP)}:${span(p.hostPort, p.hostPortEnd)}->${span(p.containerPort, p.containerPortEnd)}/${p.proto}`;
}

/** One entry per host port of a published range (the container port follows, or stays one). */
export function expandPorts(p: PublishedPort): { proto: string; containerPort: number; hostIP: string; hostPort: number }[] {
  const out = [];
  for (let i = 0; i <= p.hostPortEnd - p.hostPort; i += 1) {
    const containerPort = p.containerPortEnd > p.containerPort ? p.containerPort + i : p.containerPort;
    out.push({ proto: p.proto, containerPort, hostIP: p.hostIP || '0.0.0.0', hostPort: p.hostPort + i });
  }
  return out;
}
