// The one error registry: every error cnmkit raises is a CnmkitError with a stable code and
// an HTTP status class; the API's error handler is the only place that turns them into replies.

export type ErrorClass = 'bad-request' | 'not-found' | 'conflict' | 'forbidden' | 'unavailable' | 'internal';

export const STATUS: Record<ErrorClass, number> = {
  'bad-request': 400,
  'not-found': 404,
  conflict: 409,
  forbidden: 403,
  unavailable: 503,
  internal: 500,
};

export interface CnmkitErrorOptions {
  cause?: unknown;
  /** The input field the error is about, e.g. "subnet" or "name". */
  field?: string;
}

export class CnmkitError extends Error {
  readonly field?: string;
  constructor(
    readonly code: string,
    readonly errorClass: ErrorClass,
    message: string,
    options: CnmkitErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CnmkitError';
    if (options.field !== undefined) this.field = options.field;
  }

  get status(): number {
    return STATUS[this.errorClass];
  }
}

/** Bad input: names the field and the reason. Nothing has been changed when it is thrown. */
export class InvalidArgumentError extends CnmkitError {
  constructor(field: string, reason: string, options: CnmkitErrorOptions = {}) {
    super('ERR_INVALID_ARGUMENT', 'bad-request', `${field}: ${reason}`, { ...options, field });
    this.name = 'InvalidArgumentError';
  }
}

export class NotFoundError extends CnmkitError {
  constructor(what: string, id: string, options: CnmkitErrorOptions = {}) {
    super('ERR_NOT_FOUND', 'not-found', `${what} ${JSON.stringify(id)} not found`, options);
    this.name = 'NotFoundError';
  }
}

export class ConflictError extends CnmkitError {
  constructor(message: string, options: CnmkitErrorOptions = {}) {
    super('ERR_CONFLICT', 'conflict', message, options);
    this.name = 'ConflictError';
  }
}

/** An address chosen for a new endpoint was claimed by another host before this one could: choose again. */
export class AddressRacedError extends CnmkitError {
  constructor(address: string, options: CnmkitErrorOptions = {}) {
    super('ERR_ADDRESS_RACED', 'conflict', `address ${address} was taken by another host meanwhile`, { ...options, field: 'ip' });
    this.name = 'AddressRacedError';
  }
}

/**
 * A host port the allocator found free is held by a socket that is not ours (an outgoing
 * connection of the host takes its local port from the same ephemeral range): for a port the
 * allocator chose, choose again.
 */
export class PortInUseError extends ConflictError {
  constructor(message: string, readonly proto: string, readonly port: number, options: CnmkitErrorOptions = {}) {
    super(message, options);
    this.name = 'PortInUseError';
  }
}

/**
 * The object belongs to another front end (the Docker engine, or cnmkit's own API and CLI): only
 * its owner may remove or change it. The message names the object and says who can.
 */
export class NotOwnerError extends CnmkitError {
  constructor(message: string, options: CnmkitErrorOptions = {}) {
    super('ERR_NOT_OWNER', 'forbidden', message, options);
    this.name = 'NotOwnerError';
  }
}

/**
 * The cluster store (etcd) did not answer in time: global allocations fail fast with this. reason:
 * the store and why (never a key or an internal step); doing: what the user asked for, when a
 * front end said it (asked()), put first: `connect sandbox s1 to network ov: cluster store unavailable: …`.
 */
export class ClusterUnavailableError extends CnmkitError {
  readonly doing?: string;
  constructor(readonly reason: string, options: CnmkitErrorOptions & { doing?: string } = {}) {
    super('ERR_CLUSTER_UNAVAILABLE', 'unavailable', `${options.doing ? `${options.doing}: ` : ''}cluster store unavailable: ${reason}`, options);
    this.name = 'ClusterUnavailableError';
    if (options.doing) this.doing = options.doing;
  }
}

/** Runs work; a ClusterUnavailableError it throws says first what the user asked for (doing), once. */
export async function asked<T>(doing: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof ClusterUnavailableError && err.doing === undefined) throw new ClusterUnavailableError(err.reason, { doing, cause: err });
    throw err;
  }
}

/** A cluster request to a daemon started without --cluster-store. */
export class NotInClusterError extends CnmkitError {
  constructor() {
    super('ERR_NOT_IN_CLUSTER', 'conflict', 'this daemon runs without a cluster store: start it with --cluster-store etcd://HOST:PORT --advertise-addr IP|IFACE');
    this.name = 'NotInClusterError';
  }
}

/** A kernel (netlink or syscall) failure, with the errno code and the kernel's own text. */
export class KernelError extends CnmkitError {
  constructor(
    readonly operation: string,
    readonly errnoCode: string,
    readonly extack?: string,
    options: CnmkitErrorOptions = {},
  ) {
    super(
      `ERR_KERNEL_${errnoCode}`,
      errnoCode === 'EEXIST' || errnoCode === 'EADDRINUSE' || errnoCode === 'EBUSY'
        ? 'conflict'
        : errnoCode === 'ENOENT' || errnoCode === 'ENODEV' || errnoCode === 'ESRCH'
          ? 'not-found'
          : errnoCode === 'EINVAL' || errnoCode === 'ERANGE' || errnoCode === 'ENAMETOOLONG'
            ? 'bad-request'
            : 'internal',
      `${operation}: ${errnoCode}${extack ? ` (${extack})` : ''}`,
      options,
    );
    this.name = 'KernelError';
  }
}

/** The kernel lacks what an operation needs (a module, a link type): names the feature and what needed it. */
export class KernelFeatureError extends CnmkitError {
  constructor(readonly feature: string, what: string, options: CnmkitErrorOptions = {}) {
    super('ERR_KERNEL_FEATURE', 'unavailable', `${what}: this kernel has no ${feature} support`, options);
    this.name = 'KernelFeatureError';
  }
}

/** Several independent failures from a best-effort teardown, reported together. */
export class TeardownError extends AggregateError {
  readonly code = 'ERR_TEARDOWN';
  constructor(errors: unknown[], what: string) {
    super(errors, `${what}: ${errors.length} step(s) failed: ${errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; ')}`);
    this.name = 'TeardownError';
  }
}

/** One problem in a lab topology file: where it is and what is wrong. */
export interface LabFileProblem {
  file: string;
  /** 1-based; 0 when the problem has no place in the file. */
  line: number;
  /** Dotted path of the field, e.g. nodes.a.networks[1]. */
  field: string;
  reason: string;
}

/** A lab topology file that cannot be used as it is; lists every problem found, each with its line. */
export class LabFileError extends CnmkitError {
  constructor(readonly problems: LabFileProblem[]) {
    super('ERR_LAB_FILE', 'bad-request', problems.map((p) => `${p.file}${p.line > 0 ? `:${p.line}` : ''}: ${p.field ? `${p.field}: ` : ''}${p.reason}`).join('\n'), {
      ...(problems[0]?.field ? { field: problems[0].field } : {}),
    });
    this.name = 'LabFileError';
  }
}
