import { it } from 'vitest';
import pino from 'pino';
import { Dockerd, makeHostNs, BUSYBOX_IMAGE } from '../helpers/dockerd.js';
import { openStore } from '../../src/store/index.js';
import { Ipam } from '../../src/ipam/index.js';
import { buildDockerPluginApi } from '../../src/api/docker/index.js';
import path from 'node:path';

it('transcript', async () => {
  const host = await makeHostNs('probe');
  const d = await Dockerd.start(host);
  const store = openStore(':memory:');
  const ipam = new Ipam(store, { environment: { linkRoutes: () => ['172.17.0.0/16'], nameservers: () => [] } });
  const app = await buildDockerPluginApi({ logger: pino({ level: 'silent' }), ipam });
  const lines: string[] = [];
  app.addHook('preHandler', async (req) => { lines.push(`${req.url} ct=${req.headers['content-type']} cl=${req.headers['content-length']} te=${req.headers['transfer-encoding']} accept=${req.headers.accept} host=${req.headers.host} body=${JSON.stringify(req.body)}`); });
  app.addHook('onSend', async (req, reply, payload) => { lines.push(`  -> ${reply.statusCode} ${payload}`); return payload; });
  await app.listen({ path: path.join(d.pluginDir, 'cnmkit-ipam.sock') });
  try {
    await d.buildImage();
    lines.push('## network create');
    await d.dockerOk(['network', 'create', '--ipam-driver', 'cnmkit-ipam', '--subnet', '198.18.52.0/24', '--aux-address', 'r=198.18.52.9', '--ipam-opt', 'foo=bar', 'w']);
    lines.push('## run -d');
    await d.dockerOk(['run', '-d', '--name', 'c1', '--restart', 'always', '--network', 'w', '--ip', '198.18.52.50', BUSYBOX_IMAGE, 'sleep', '300']);
    await d.dockerOk(['run', '-d', '--name', 'c2', '--restart', 'always', '--network', 'w', BUSYBOX_IMAGE, 'sleep', '300']);
    lines.push('## restart');
    await d.restart();
    await new Promise((r) => setTimeout(r, 1500));
    lines.push('## ps: ' + (await d.dockerOk(['ps', '--format', '{{.Names}} {{.Status}}'])).replace(/\n/g, '; '));
    lines.push('## rm -f');
    await d.dockerOk(['rm', '-f', 'c1', 'c2']);
    lines.push('## network rm');
    await d.dockerOk(['network', 'rm', 'w']);
    console.log(lines.join('\n'));
    console.log(d.log().split('\n').filter((l) => /level=(warn|error)/.test(l)).join('\n'));
  } finally {
    await app.close();
    await d.cleanup();
    await host.delete();
    store.close();
  }
}, 120000);
