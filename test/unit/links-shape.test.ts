// Link shaping and a node's hosts file, without root: the tc command lines a link end gets (tbf
// for a rate, netem for delay/jitter/loss), the checks made before anything is made, and the
// hosts file text.
import { describe, expect, it } from 'vitest';
import { checkShaping, rateBytes, tcArgs } from '../../src/links/shape.js';
import { hostsFileText } from '../../src/sandbox-config/index.js';

describe('link shaping', () => {
  it('shapes a rate alone with tbf, with a burst of at least 32 KiB', () => {
    expect(tcArgs('eth1', { rate: '100mbit' })).toEqual(['qdisc', 'replace', 'dev', 'eth1', 'root', 'tbf', 'rate', '100mbit', 'burst', '125000', 'latency', '50ms']);
    expect(tcArgs('eth1', { rate: '1mbit' })).toContain('32768');
    expect(tcArgs('eth1', {})).toBeUndefined();
  });

  it('uses netem for delay, jitter and loss, with the rate inside it', () => {
    expect(tcArgs('p0', { delay: '10ms', jitter: '2ms', loss: '1%', rate: '10mbit' })).toEqual(['qdisc', 'replace', 'dev', 'p0', 'root', 'netem', 'delay', '10ms', '2ms', 'loss', '1%', 'rate', '10mbit']);
  });

  it('reads rates in bits and bytes, and refuses bad values by field before anything is made', () => {
    expect(rateBytes('8kbit')).toBe(1000);
    expect(rateBytes('1mbps')).toBe(1e6);
    expect(() => checkShaping({ rate: 'fast' })).toThrow(/^rate: "fast" is not a rate/);
    expect(() => checkShaping({ jitter: '1ms' })).toThrow(/^jitter: jitter needs a delay/);
    expect(() => checkShaping({ loss: '101%' })).toThrow(/^loss: /);
  });
});

describe('hosts file of a lab node', () => {
  it('lists localhost, then every entry in order', () => {
    expect(hostsFileText([{ ip: '198.19.1.10', names: ['h1', 'h1.tri'] }])).toBe('127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n198.19.1.10\th1 h1.tri\n');
  });
});
