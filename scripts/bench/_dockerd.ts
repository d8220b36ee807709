// Whether the real Docker engine can run here for a benchmark's Docker side (the engine itself is
// test/helpers/engine.ts, shared with the e2e tests).
import fs from 'node:fs';
import { BUSYBOX, DOCKER, DOCKERD } from '../../test/helpers/engine.js';

/** Why the Docker side cannot run here, or undefined when it can. */
export function dockerMissing(): string | undefined {
  const gone = [DOCKERD, DOCKER, BUSYBOX, '/usr/sbin/docker-proxy', '/usr/bin/docker-proxy'].filter((f) => !fs.existsSync(f));
  if (gone.includes(DOCKERD) || gone.includes(DOCKER)) return `${DOCKERD} / ${DOCKER} missing: apt-get install docker.io (scripts/setup does it without starting an engine)`;
  if (gone.includes(BUSYBOX)) return `${BUSYBOX} missing: apt-get install busybox-static`;
  if (gone.includes('/usr/sbin/docker-proxy') && gone.includes('/usr/bin/docker-proxy')) return 'docker-proxy missing (package docker.io)';
  return undefined;
}
