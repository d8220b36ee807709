// The management API's client, for the CLI and the lab tool: JSON over HTTP on the daemon's unix socket
// (--socket PATH, else CNMKIT_SOCKET, else /run/cnmkit/cnmkit.sock). Connections are kept alive
// (node's agent); a request that meets a kept-alive connection the daemon closed as idle is sent
// again once on a new one, and only then (see retryable).
import http from 'node:http';
import { WARNING_HEADER } from '../api/headers.js';

export const DEFAULT_SOCKET = '/run/cnmkit/cnmkit.sock';

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly code?: string, readonly field?: string) {
    super(message);
    this.name = 'ApiError';
  }
}

export function socketPath(flag: string | undefined): string {
  return flag ?? process.env.CNMKIT_SOCKET ?? DEFAULT_SOCKET;
}

/**
 * The daemon closes a kept-alive connection only while it is idle, that is with no request read
 * from it; a request written as it closes is reset unread (or fails to write). So a reset on a
 * reused connection before any answer means the daemon never read the request: sending it again
 * cannot do it twice. A reset on a new connection, or after the answer began, is not retried.
 */
function retryable(err: NodeJS.ErrnoException, reused: boolean, answered: boolean): boolean {
  return reused && closedUnanswered(err, answered);
}

/** Whether the daemon closed the connection (reset, or a write that failed) before any answer. */
function closedUnanswered(err: NodeJS.ErrnoException, answered: boolean): boolean {
  return !answered && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
}

export class Client {
  constructor(readonly socket: string) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.requestWarned<T>(method, path, body)).data;
  }

  /** The reply and the daemon's warnings about it (e.g. a list that may be incomplete). */
  requestWarned<T>(method: string, path: string, body?: unknown): Promise<{ data: T; warnings: string[] }> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return this.attempt<T>(method, path, payload, true);
  }

  private attempt<T>(method: string, path: string, payload: Buffer | undefined, mayRetry: boolean): Promise<{ data: T; warnings: string[] }> {
    let answered = false;
    return new Promise<{ data: T; warnings: string[] }>((resolve, reject) => {
      // servername given (node's agent reads it though http's types omit it): left unset, the agent asks
      // net.isIP about the host ('localhost'), whose first IPv6 test compiles a regular expression
      // (~12 ms of a short command's start).
      const options: http.RequestOptions & { servername: string } = {
        socketPath: this.socket, servername: '', method, path,
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
      };
      const req = http.request(
        options,
        (res) => {
          answered = true;
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            const data = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
            if ((res.statusCode ?? 500) >= 400) {
              const msg = typeof data?.error === 'string' ? data.error : text || `HTTP ${res.statusCode}`;
              reject(new ApiError(res.statusCode ?? 500, msg, data?.code as string | undefined, data?.field as string | undefined));
            } else {
              resolve({ data: data as T, warnings: res.headersDistinct[WARNING_HEADER] ?? [] });
            }
          });
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (mayRetry && retryable(err, req.reusedSocket, answered)) resolve(this.attempt<T>(method, path, payload, false));
        else if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')
          reject(new ApiError(0, `cannot reach the cnmkit daemon at ${this.socket} (${err.code}): is \`cnmkit daemon\` running?`));
        else if (err.code === 'EACCES') reject(new ApiError(0, `permission denied on ${this.socket}: the daemon's socket is for root`));
        else if (closedUnanswered(err, answered)) {
          // Not sent again: the daemon may have handled it before it closed (a crash); a closed
          // fresh connection is mostly the daemon at its limit of connections at once.
          reject(new ApiError(0, `the cnmkit daemon at ${this.socket} closed the connection before answering (${err.code}): it was serving as many connections as it takes at once (128 on its management socket), or it stopped; try again`, err.code));
        }
        else reject(err);
      });
      req.end(payload);
    });
  }
}
