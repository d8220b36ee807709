// Whether the real Docker engine can run here for a benchmark's Docker side (the engine itself is
// test/helpers/engine.ts, shared with the e2e tests), and where its docker-proxy is.
import fs from 'node:fs';
import { BUSYBOX, DOCKER, DOCKERD } from '../../test/helpers/engine.js';

const DOCKER_PROXY = ['/usr/sbin/docker-proxy', '/usr/bin/docker-proxy'];

/** docker-proxy of Debian's docker.io (the one dockerd runs), or undefined when it is not installed. */
export function dockerProxyPath(): string | undefined {
  return DOCKER_PROXY.find((f) => fs.existsSync(f));
}

/** Why the Docker side cannot run here, or undefined when it can. */
export function dockerMissing(): string | undefined {
  const gone = [DOCKERD, DOCKER, BUSYBOX].filter((f) => !fs.existsSync(f));
  if (gone.includes(DOCKERD) || gone.includes(DOCKER)) return `${DOCKERD} / ${DOCKER} missing: apt-get install docker.io (scripts/setup does it without starting an engine)`;
  if (gone.includes(BUSYBOX)) return `${BUSYBOX} missing: apt-get install busybox-static`;
  if (!dockerProxyPath()) return 'docker-proxy missing (package docker.io)';
  return undefined;
}
