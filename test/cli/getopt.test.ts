import { describe, expect, it } from 'vitest';
import { getopt, glibcMessage } from '../../src/cli/getopt.ts';

describe('getopt', () => {
  it('permutes options after operands, bundles flags and attached arguments', () => {
    const r = getopt(['0', '-qvP0xab', '4k', '-s', '512'], 'P:qs:v');
    expect(r.opts).toEqual([
      ['q', ''],
      ['v', ''],
      ['P', '0xab'],
      ['s', '512'],
    ]);
    expect(r.operands).toEqual(['0', '4k']);
  });

  it('treats a negative number as an option and stops at --', () => {
    expect(getopt(['0', '-1'], 'q').error).toEqual({ kind: 'invalid', option: '1', arg: '-1' });
    expect(getopt(['--', '-1', '0'], 'q').operands).toEqual(['-1', '0']);
  });

  it('parses long options with = or a separate argument', () => {
    const longs = [
      { name: 'output', hasArg: true },
      { name: 'image-opts', hasArg: false },
    ];
    expect(getopt(['--output=json', '--image-opts', 'x'], '', longs).opts).toEqual([
      ['output', 'json'],
      ['image-opts', ''],
    ]);
    expect(getopt(['--output'], '', longs).error).toEqual({
      kind: 'missing',
      option: 'output',
      arg: '--output',
    });
    expect(getopt(['--image-opts=1'], '', longs).error?.kind).toBe('invalid');
  });

  it("words errors as glibc does for qemu-io's commands", () => {
    expect(glibcMessage('read', { kind: 'invalid', option: 'z', arg: '-z' })).toBe(
      "read: invalid option -- 'z'",
    );
    expect(glibcMessage('read', { kind: 'missing', option: 'P', arg: '-P' })).toBe(
      "read: option requires an argument -- 'P'",
    );
    expect(glibcMessage('x', { kind: 'invalid', option: 'bogus', arg: '--bogus' })).toBe(
      "x: unrecognized option '--bogus'",
    );
  });
});
