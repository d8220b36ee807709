// The management API's client, for the CLI and the lab tool: JSON over HTTP on the daemon's unix socket
// (--socket PATH, else CNMKIT_SOCKET, else /run/cnmkit/cnmkit.sock).
import http from 'node:http';

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

export class Client {
  constructor(readonly socket: string) {}

  request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socket, method, path,
          headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            const data = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
            if ((res.statusCode ?? 500) >= 400) {
              const msg = typeof data?.error === 'string' ? data.error : text || `HTTP ${res.statusCode}`;
              reject(new ApiError(res.statusCode ?? 500, msg, data?.code as string | undefined, data?.field as string | undefined));
            } else resolve(data as T);
          });
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')
          reject(new ApiError(0, `cannot reach the cnmkit daemon at ${this.socket} (${err.code}): is \`cnmkit daemon\` running?`));
        else if (err.code === 'EACCES') reject(new ApiError(0, `permission denied on ${this.socket}: the daemon's socket is for root`));
        else reject(err);
      });
      req.end(payload);
    });
  }
}
