// The one module for IP addresses, prefixes and MACs (text, BigInt, bytes): every layer uses it.
export * from './address.js';
export * from './prefix.js';
export * from './wire.js';
