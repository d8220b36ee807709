// The Docker engine's handed-back endpoints, as every driver of detached endpoints tells them. A
// `docker network disconnect` or `docker stop` whose Leave and DeleteEndpoint found no plugin
// through all the engine's retries (about 15 s per call) succeeds without it: the engine forgets
// the endpoint and moves the container end back to its own namespace (the daemon's), under the
// name it had there. Nothing vanishes, so nothing notices: a driver keeps the engine's Join in the
// endpoint's driver data (markJoined), and at a restart takes a joined endpoint whose container end
// is in the daemon's namespace again for one handed back.
// Limits: asked at a restore only. At run time the engine moves a container end into its sandbox
// only after its Join answered, so a listing made meanwhile would find a just-joined one there too.
import type { EndpointRecord } from '../core/model.js';

/** What a driver keeps of the engine's Join in a detached endpoint's driver data. */
export interface DockerJoinData {
  /** The engine joined it (took the container end into its sandbox). */
  joined?: boolean;
}

/** A detached endpoint's driver data as the engine's Join leaves it (the controller stores it). */
export function markJoined<T extends object>(data: T): T & DockerJoinData {
  return { ...data, joined: true };
}

/**
 * Whether the engine handed the endpoint back: joined, and its container end (containerEnd, the
 * name the engine took it under) among links, the link names of the daemon's namespace.
 */
export function handedBack(ep: EndpointRecord, containerEnd: string | undefined, links: ReadonlySet<string>): boolean {
  return (ep.driverData as DockerJoinData | undefined)?.joined === true && containerEnd !== undefined && links.has(containerEnd);
}
