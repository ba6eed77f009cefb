import { describe, expect, it } from 'vitest';
import { parseSize, strtosz } from '../../src/config/size.ts';

const SUFFIX_HINT =
  'Invalid image size specified. You may use k, M, G, T, P or E suffixes for\n' +
  'kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.';
const RANGE = 'Invalid image size specified. Must be between 0 and 9223372036854775807.';

describe('parseSize (qemu-img create sizes, captured from QEMU 7.2)', () => {
  it.each([
    ['1024', 1024],
    ['1k', 1024],
    ['1K', 1024],
    ['1M', 1048576],
    ['1.5G', 1610612736],
    ['1.5k', 1536],
    ['1b', 1],
    ['1B', 1],
    ['1T', 1099511627776],
    ['1P', 1125899906842624],
    ['1e', 1152921504606846976],
    ['1E', 1152921504606846976],
    ['0x10', 16],
    ['0x10k', 16384],
    ['010', 10],
    ['+5', 5],
    [' 1k', 1024],
    ['1.k', 1024],
    ['1.e', 1152921504606846976],
    ['1.0000000001k', 1024],
  ])('%s is %d bytes', (s, bytes) => {
    expect(parseSize(s)).toBe(bytes);
  });

  it.each(['1MB', '1kB', '1.5', '0.5', '1.1b', 'abc', '', '-1', '1k5', '1e3', '0x', '1 k', '0x1.8k', '1k '])(
    '%j is refused with the suffix hint',
    (s) => {
      expect(() => parseSize(s)).toThrow(SUFFIX_HINT);
    },
  );

  it.each(['8E', '16E', '16383P', '18446744073709551615', '18446744073709551616'])(
    '%s is out of range',
    (s) => {
      expect(() => parseSize(s)).toThrow(RANGE);
    },
  );

  it('names what it parses in the error', () => {
    expect(() => parseSize('x', 'offset')).toThrow(/^Invalid offset specified\. You may use/);
  });

  it('strtosz reads all of 2^64-1 exactly and refuses 2^64 as ERANGE', () => {
    expect(strtosz('18446744073709551615')).toBe(2n ** 64n - 1n);
    expect(() => strtosz('16E')).toThrow(expect.objectContaining({ reason: 'ERANGE' }));
    expect(() => strtosz('x')).toThrow(expect.objectContaining({ reason: 'EINVAL' }));
  });
});
