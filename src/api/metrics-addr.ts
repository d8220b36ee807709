// `--metrics-addr HOST:PORT` parsed, apart from the metrics server: checked before the daemon's
// modules load (the server's fastify loads only when the daemon serves).
import net from 'node:net';
import { InvalidArgumentError } from '../errors.js';

export interface MetricsAddr {
  host: string;
  port: number;
}

/** `127.0.0.1:9323` or `[::1]:9323` → host and port; the host must be an IP address. */
export function parseMetricsAddr(text: string): MetricsAddr {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !host || !net.isIP(host) || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new InvalidArgumentError('--metrics-addr', `expected IP:PORT, e.g. 127.0.0.1:9323 or [::1]:9323, got ${JSON.stringify(text)}`);
  return { host, port };
}
