import { describe, expect, it } from 'vitest';
import { validateIfname, validateNetnsName } from '../../src/netns/names.js';
import { InvalidArgumentError } from '../../src/errors.js';

describe('name validation', () => {
  it('accepts kernel-valid interface names up to 15 characters', () => {
    expect(validateIfname('eth0')).toBe('eth0');
    expect(validateIfname('veth-abc.10')).toBe('veth-abc.10');
    expect(validateIfname('a23456789012345')).toBe('a23456789012345');
  });

  it.each([
    ['a234567890123456', /longer than 15/],
    ['has space', /may hold only/],
    ['sl/ash', /may hold only/],
    ['', /required/],
    ['-lead', /may hold only/],
  ])('rejects %j naming the field and the reason', (name, why) => {
    expect(() => validateIfname(name, 'bridge.name')).toThrow(InvalidArgumentError);
    expect(() => validateIfname(name, 'bridge.name')).toThrow(why);
    expect(() => validateIfname(name, 'bridge.name')).toThrow(/^bridge\.name: /);
  });

  it('validates namespace names', () => {
    expect(validateNetnsName('lab-1.a')).toBe('lab-1.a');
    expect(() => validateNetnsName('../etc')).toThrow(/namespace name/);
    expect(() => validateNetnsName('x'.repeat(65))).toThrow(/longer than 64/);
  });
});
