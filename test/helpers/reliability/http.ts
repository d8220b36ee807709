// HTTP over a daemon's unix socket for the reliability campaigns: raw bytes in (any request, well
// formed or not), every response that comes back out, with a deadline so that a hang is seen as
// one; and a small JSON client for the workloads. No test-runner imports (scripts/soak uses it).
// Limits: the response parser reads Content-Length bodies (what node and fastify send), and a
// chunked body only as far as its first chunk; enough to check the status and the error shape.
import net from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface Exchange {
  responses: RawResponse[];
  /** No close from the daemon within the deadline. */
  hung: boolean;
  /** The connection could not be made at all (daemon gone, socket missing). */
  refused?: string;
  ms: number;
  /** From connecting to writing the request: a client that stalls longer than the daemon's header timeout is cut (408), and may lose that answer to its own failed write. */
  wroteAfterMs?: number;
}

/** Parses every complete HTTP/1.x response in the bytes, in order. */
export function parseResponses(bytes: Buffer): RawResponse[] {
  const out: RawResponse[] = [];
  let rest = bytes;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (!rest.subarray(0, 7).equals(Buffer.from('HTTP/1.')) || end < 0) return out;
    const [statusLine = '', ...lines] = rest.subarray(0, end).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const colon = l.indexOf(':');
      if (colon > 0) headers[l.slice(0, colon).trim().toLowerCase()] = l.slice(colon + 1).trim();
    }
    const status = Number(statusLine.split(' ')[1]);
    rest = rest.subarray(end + 4);
    let body: Buffer;
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      body = rest.subarray(0, n);
      rest = rest.subarray(n);
    } else if (headers['transfer-encoding'] === 'chunked') {
      const m = /^([0-9a-f]+)\r\n/i.exec(rest.toString('latin1', 0, 20));
      body = m ? rest.subarray(m[0].length, m[0].length + parseInt(m[1]!, 16)) : Buffer.alloc(0);
      rest = Buffer.alloc(0);
    } else {
      body = rest;
      rest = Buffer.alloc(0);
    }
    out.push({ status, headers, body: body.toString() });
  }
}

/**
 * Connects to socketPath, writes bytes and collects what comes back until the daemon closes the
 * connection or timeoutMs passes (hung). With halfClose the client then ends its side, so that a
 * truncated request is seen to end (node's HTTP server then drops the request without an answer,
 * which is a close, not a hang); without it, the daemon's own timeouts must end a truncated one.
 */
export function exchange(socketPath: string, bytes: Buffer, timeoutMs: number, halfClose = false): Promise<Exchange> {
  const started = Date.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const sock = net.connect(socketPath);
    const done = (extra: Partial<Exchange>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ responses: parseResponses(Buffer.concat(chunks)), hung: false, ms: Date.now() - started, ...(wroteAfterMs !== undefined ? { wroteAfterMs } : {}), ...extra });
    };
    const timer = setTimeout(() => done({ hung: true }), timeoutMs);
    let connected = false;
    let wroteAfterMs: number | undefined;
    sock.on('connect', () => {
      connected = true;
      wroteAfterMs = Date.now() - started;
      if (halfClose) sock.end(bytes);
      else sock.write(bytes);
    });
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', (err: NodeJS.ErrnoException) => done(connected ? {} : { refused: err.code ?? err.message }));
    sock.on('close', () => done({}));
  });
}

/** The bytes of one well-formed request (Connection: close); body as given, its length declared unless told otherwise. */
export function requestBytes(method: string, path: string, body: string | undefined, opts: { contentType?: string | null; contentLength?: number } = {}): Buffer {
  const payload = Buffer.from(body ?? '');
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: cnmkit', 'Connection: close'];
  const type = opts.contentType === undefined ? (body === undefined ? null : 'application/json') : opts.contentType;
  if (type !== null) lines.push(`Content-Type: ${type}`);
  if (body !== undefined || opts.contentLength !== undefined) lines.push(`Content-Length: ${opts.contentLength ?? payload.length}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`), payload]);
}

export interface JsonReply<T = unknown> {
  status: number;
  body: T;
}

/** One JSON request; status 0 and the error's text when there was no answer within timeoutMs. */
export async function jsonRequest<T = any>(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<JsonReply<T>> {
  const ex = await exchange(socketPath, requestBytes(method, path, body === undefined ? undefined : JSON.stringify(body)), timeoutMs);
  const r = ex.responses[0];
  if (!r) return { status: 0, body: (ex.hung ? 'no answer in time' : ex.refused ?? 'closed without an answer') as T };
  let parsed: unknown = r.body;
  try {
    parsed = r.body === '' ? undefined : JSON.parse(r.body);
  } catch {
    // Not JSON: the caller sees the text.
  }
  return { status: r.status, body: parsed as T };
}
