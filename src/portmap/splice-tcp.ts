// Hands a connected pair of TCP sockets to the native splice relay (zero copy, off the JS thread).
// Limits: Linux; only sockets never read and with nothing queued; no relay (an addon built before
// it) = the caller copies.
import type net from 'node:net';
import { native, type NativeAddon, type SpliceRelay, type SpliceRelayDone, type SpliceRelayOptions } from '../netns/native.js';
import type { Logger } from './log.js';

type SpliceFn = NonNullable<NativeAddon['spliceRelay']>;

/** The native relay, or why there is none (the addon predates it). */
const spliceRelay: SpliceFn | Error = native.spliceRelay ?? new Error('the native addon has no spliceRelay (rebuild native/)');

/** Whether connections can be spliced at all (the addon has the relay). */
export function spliceAvailable(): boolean {
  return !(spliceRelay instanceof Error);
}

/** The first fallback is logged at warn level, later ones at debug: one cause floods otherwise. */
let fallbackLogged = false;

function logFallback(logger: Logger, err: Error): void {
  const level = fallbackLogged ? 'debug' : 'warn';
  fallbackLogged = true;
  logger[level]({ err }, 'proxy: splice relay unavailable, copying TCP through user space');
}

/** The parts of Node's internal TCP handle the hand-over needs. */
interface TcpHandle {
  fd?: number;
  reading?: boolean;
  readStop?(): number;
}

/** socket's fd when it can be handed over: connected, never read into JS, nothing queued. */
function handOverFd(socket: net.Socket): number | string {
  const handle = (socket as unknown as { _handle?: TcpHandle | null })._handle;
  if (socket.destroyed || !handle || typeof handle.fd !== 'number' || handle.fd < 0) return 'the socket has no file descriptor';
  if (socket.readableLength > 0 || socket.writableLength > 0) return 'the socket already buffers data in JS';
  return handle.fd;
}

/** Stops libuv from reading socket, so that only the relay reads its fd. */
function stopReading(socket: net.Socket): void {
  socket.pause();
  const handle = (socket as unknown as { _handle: TcpHandle })._handle;
  handle.reading = false;
  handle.readStop?.();
}

/**
 * Relays a ↔ b with splice(2) until both directions end, an error, cancel() or options.idleMs
 * without traffic; then calls
 * done, after which the caller must destroy both sockets (never before: the relay uses their
 * fds). Returns undefined, having logged why, when the relay cannot start: a and b are then
 * untouched and the caller copies through streams instead.
 */
export function spliceSockets(a: net.Socket, b: net.Socket, logger: Logger, options: SpliceRelayOptions, done: SpliceRelayDone): SpliceRelay | undefined {
  if (spliceRelay instanceof Error) {
    logFallback(logger, spliceRelay);
    return undefined;
  }
  const fdA = handOverFd(a);
  const fdB = handOverFd(b);
  if (typeof fdA === 'string' || typeof fdB === 'string') {
    logger.debug({ reason: typeof fdA === 'string' ? fdA : fdB }, 'proxy: copying this TCP connection through user space');
    return undefined;
  }
  stopReading(a);
  stopReading(b);
  try {
    return spliceRelay(fdA, fdB, done, options);
  } catch (err) {
    logFallback(logger, err as Error);
    return undefined;
  }
}
