// servePlugins on real unix sockets in a temporary directory (no root needed): one socket per
// plugin, mode 0660, requests written byte for byte the way the engine writes them, stale socket
// files replaced, a live one refused, and the files gone after close.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { openStore, type Store } from '../../src/store/index.js';
import { Ipam } from '../../src/ipam/index.js';
import { servePlugins, type DockerNetworkBackend, type PluginServers } from '../../src/api/docker/index.js';

let dir: string;
let store: Store;
let ipam: Ipam;
const servers: PluginServers[] = [];

const backend: DockerNetworkBackend = {
  createNetwork() {}, deleteNetwork() {}, createEndpoint: () => ({}), deleteEndpoint() {},
  join: () => ({ InterfaceName: { SrcName: 'veth0', DstPrefix: 'eth' } }), leave() {}, programExternalConnectivity() {}, revokeExternalConnectivity() {},
};

/** One raw HTTP/1.1 exchange, shaped like the engine's: no Content-Type, Content-Length 0 when empty. */
function rawCall(socketPath: string, call: string, body = ''): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let data = '';
    sock.on('data', (d) => {
      data += d.toString();
      const end = data.indexOf('\r\n\r\n');
      const len = /content-length: (\d+)/i.exec(data);
      if (end >= 0 && len && data.length >= end + 4 + Number(len[1])) {
        sock.end();
        resolve({ status: Number(data.split(' ')[1]), headers: data.slice(0, end).toLowerCase(), body: data.slice(end + 4) });
      }
    });
    sock.on('error', reject);
    sock.write(`POST /${call} HTTP/1.1\r\nHost: plugin\r\nUser-Agent: Go-http-client/1.1\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nAccept-Encoding: gzip\r\n\r\n${body}`);
  });
}

async function serve(network?: DockerNetworkBackend): Promise<PluginServers> {
  const s = await servePlugins({ pluginDir: dir, ipam, logger: pino({ level: 'silent' }), ...(network ? { networks: { 'cnmkit-bridge': network } } : {}) });
  servers.push(s);
  return s;
}

describe('servePlugins', () => {
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-plugins-'));
    store = openStore(':memory:');
    ipam = new Ipam(store, { environment: { linkRoutes: () => [], nameservers: () => [] } });
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves only the IPAM socket without a network backend, mode 0660, and answers like a plugin', async () => {
    const s = await serve();
    const sock = path.join(dir, 'cnmkit-ipam.sock');
    expect(s.sockets).toEqual({ 'cnmkit-ipam': sock });
    expect(fs.readdirSync(dir)).toEqual(['cnmkit-ipam.sock']);
    const st = fs.statSync(sock);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    const act = await rawCall(sock, 'Plugin.Activate');
    expect(act.status).toBe(200);
    expect(act.headers).toContain('content-type: application/vnd.docker.plugins.v1.1+json');
    expect(JSON.parse(act.body)).toEqual({ Implements: ['IpamDriver'] });
    const pool = await rawCall(sock, 'IpamDriver.RequestPool', '{"AddressSpace":"LocalDefault","Pool":"198.18.70.0/24","SubPool":"","Options":{},"V6":false}\n');
    expect(JSON.parse(pool.body)).toEqual({ PoolID: 'LocalDefault/198.18.70.0/24', Pool: '198.18.70.0/24', Data: {} });
    const rel = await rawCall(sock, 'IpamDriver.ReleasePool', '{"PoolID":"LocalDefault/198.18.70.0/24"}\n');
    expect(rel).toMatchObject({ status: 200, body: '{}' });
  });

  it('serves the bridge socket too when given a backend', async () => {
    const s = await serve(backend);
    expect(Object.keys(s.sockets).sort()).toEqual(['cnmkit-bridge', 'cnmkit-ipam']);
    const act = await rawCall(s.sockets['cnmkit-bridge']!, 'Plugin.Activate');
    expect(JSON.parse(act.body)).toEqual({ Implements: ['NetworkDriver'] });
    const caps = await rawCall(s.sockets['cnmkit-bridge']!, 'NetworkDriver.GetCapabilities');
    expect(JSON.parse(caps.body)).toEqual({ Scope: 'local', ConnectivityScope: 'local' });
    expect((await rawCall(s.sockets['cnmkit-bridge']!, 'NetworkDriver.Leave', `{"NetworkID":"${'a'.repeat(64)}","EndpointID":"${'b'.repeat(64)}"}\n`)).body).toBe('{}');
  });

  it('replaces a stale socket file, refuses a live one, and removes its files on close', async () => {
    fs.writeFileSync(path.join(dir, 'cnmkit-ipam.sock'), '');
    const first = await serve(backend);
    await expect(servePlugins({ pluginDir: dir, ipam, logger: pino({ level: 'silent' }) })).rejects.toThrow(/already listening on/);
    expect(JSON.parse((await rawCall(first.sockets['cnmkit-ipam']!, 'Plugin.Activate')).body)).toEqual({ Implements: ['IpamDriver'] });
    await first.close();
    servers.splice(0);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('closes while the engine still holds a keep-alive connection', async () => {
    const s = await serve();
    const sock = net.connect(s.sockets['cnmkit-ipam']!);
    await new Promise((resolve) => sock.once('connect', resolve));
    sock.write('POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\nContent-Length: 0\r\n\r\n');
    await new Promise((resolve) => sock.once('data', resolve));
    const started = Date.now();
    await s.close();
    servers.splice(0);
    expect(Date.now() - started).toBeLessThan(2000);
    sock.destroy();
  });
});
