// HTTP headers of the management API that its client reads too (kept free of imports, so the
// CLI loads no server code for them).

/** A warning about a reply that is still an answer (e.g. a list that may be incomplete): one header per warning, printable ASCII. */
export const WARNING_HEADER = 'cnmkit-warning';
