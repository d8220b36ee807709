// Build step: parts of bundled packages that cnmkit never uses, loaded on first use rather than when
// the package loads (scripts/build.ts); test/unit/build-lazy.test.ts checks what a bundle loads.
import fs from 'node:fs';
import type { Plugin } from 'esbuild';

/**
 * Node modules a daemon never uses, required at load by packages it does use, loaded on first use
 * instead (~15 ms of every daemon start): fastify's server module requires https, http2 and dns for
 * options cnmkit does not set (an HTTPS or HTTP/2 server, listening on a host name), and prom-client's
 * index its Pushgateway (https, tls, zlib) and its cluster-worker aggregator module. Each
 * replaced text is checked: a package that changed them fails the build.
 */
export const LAZY: Array<{ file: RegExp; from: string; to: string }> = [
  {
    file: /node_modules[\\/]fastify[\\/]lib[\\/]server\.js$/,
    from: "const https = require('node:https')\nconst http2 = require('node:http2')\nconst dns = require('node:dns')\n",
    to: "const https = { createServer: (...a) => require('node:https').createServer(...a) }\n"
      + "const http2 = { createServer: (...a) => require('node:http2').createServer(...a), createSecureServer: (...a) => require('node:http2').createSecureServer(...a) }\n"
      + "const dns = { lookup: (...a) => require('node:dns').lookup(...a) }\n",
  },
  {
    file: /node_modules[\\/]prom-client[\\/]index\.js$/,
    from: "exports.Pushgateway = require('./lib/pushgateway');",
    to: "Object.defineProperty(exports, 'Pushgateway', { enumerable: true, get: () => require('./lib/pushgateway') });",
  },
  {
    file: /node_modules[\\/]prom-client[\\/]index\.js$/,
    from: "exports.AggregatorRegistry = require('./lib/cluster');",
    to: "Object.defineProperty(exports, 'AggregatorRegistry', { enumerable: true, get: () => require('./lib/cluster') });",
  },
];
export const lazyModules: Plugin = {
  name: 'lazy-modules',
  setup(b) {
    const files = [...new Set(LAZY.map((l) => l.file))];
    for (const file of files) {
      b.onLoad({ filter: file }, (args) => {
        let text = fs.readFileSync(args.path, 'utf8');
        for (const l of LAZY.filter((x) => x.file === file)) {
          if (!text.includes(l.from)) throw new Error(`build: ${args.path} no longer holds ${JSON.stringify(l.from)}`);
          text = text.replace(l.from, l.to);
        }
        return { contents: text, loader: 'js' };
      });
    }
  },
};
