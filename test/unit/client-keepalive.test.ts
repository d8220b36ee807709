// The management API's client over a kept-alive connection, against a raw HTTP server on a real
// unix socket that plays the daemon closing an idle connection just as the next request arrives
// (it closes without handling it): the client sends that request again once, on a new connection,
// and the server sees it handled once. A request reset on a new connection is not sent again, and
// its error says why a daemon closes a fresh connection.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Client } from '../../src/client/index.js';

let dir: string;
let server: net.Server | undefined;
const open = new Set<net.Socket>();

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-client-'));
});
afterEach(async () => {
  // The client's agent keeps its connection open: closed here, or the server would wait for it.
  for (const c of open) c.destroy();
  open.clear();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * A server that answers the first request of every connection (keeping it alive, as the daemon
 * does) and closes the connection when a second one comes, without handling it; with resetAll it
 * closes on every request. Returns the socket path and the requests it handled, in order.
 */
async function flakyServer(resetAll = false): Promise<{ sock: string; handled: string[] }> {
  const sock = path.join(dir, 'api.sock');
  const handled: string[] = [];
  server = net.createServer((c) => {
    open.add(c);
    let served = 0;
    c.on('data', (d: Buffer) => {
      // Closed without handling it: the client sees the connection end before any answer.
      if (resetAll || served > 0) return void c.destroy();
      served += 1;
      handled.push(d.toString().split('\r\n')[0]!);
      const body = JSON.stringify({ n: handled.length });
      c.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\n\r\n${body}`);
    });
    c.on('error', () => undefined);
  });
  await new Promise<void>((r) => server!.listen(sock, r));
  return { sock, handled };
}

describe('the client on a kept-alive connection the daemon closes', () => {
  it('sends a request the daemon never read again, once, on a new connection', async () => {
    const { sock, handled } = await flakyServer();
    const client = new Client(sock);
    expect(await client.request('POST', '/v1/networks', { name: 'a' })).toEqual({ n: 1 });
    // Reused connection: the server closes it unhandled; the request goes again on a new one.
    expect(await client.request('POST', '/v1/sandboxes', { name: 'b' })).toEqual({ n: 2 });
    expect(handled).toEqual(['POST /v1/networks HTTP/1.1', 'POST /v1/sandboxes HTTP/1.1']);
  });

  it('does not send again a request reset on a new connection', async () => {
    const { sock, handled } = await flakyServer(true);
    let seen = 0;
    server!.on('connection', () => (seen += 1));
    await expect(new Client(sock).request('POST', '/v1/networks', { name: 'a' })).rejects.toMatchObject({
      code: expect.stringMatching(/ECONNRESET|EPIPE/),
      message: expect.stringMatching(/^the cnmkit daemon at \S+ closed the connection before answering \((ECONNRESET|EPIPE)\): it was serving as many connections as it takes at once \(128 on its management socket\), or it stopped; try again$/),
    });
    expect([seen, handled]).toEqual([1, []]);
  });
});
