import { describe, expect, it } from 'vitest';
import { COMMON_NODE_OPTIONS, type OptionsSchema } from '../../src/config/schema.ts';
import { validateOptions, type OptionSource } from '../../src/config/validate.ts';

/** A driver schema with one option of each type, plus the common node options. */
const SCHEMA: OptionsSchema = {
  ...COMMON_NODE_OPTIONS,
  size: { type: 'int', help: 'size' },
  'l2-cache-size': { type: 'size', help: 'cache' },
  filename: { type: 'str', help: 'path' },
  aio: { type: 'enum', values: ['threads', 'native'], default: 'threads', help: 'aio' },
  align: { type: 'int', min: 1, max: 4096, help: 'alignment' },
  file: { type: 'child', role: 'file', help: 'file' },
  backing: { type: 'child', role: 'backing', nullable: true, help: 'backing' },
  rules: {
    type: 'list',
    item: { type: 'object', fields: { sector: { type: 'int', help: '' } }, help: '' },
    help: '',
  },
};

function check(source: OptionSource, raw: Record<string, unknown>, path = '', driverName = 'raw') {
  return validateOptions(SCHEMA, raw, { source, path, driverName });
}

describe('validateOptions: typing', () => {
  it('types keyval strings by the schema and applies defaults (cli)', () => {
    const out = check('cli', {
      driver: 'raw',
      size: '0x10',
      'l2-cache-size': '0x100000',
      'read-only': 'yes',
      cache: { direct: 'on' },
      rules: [{ sector: '7' }],
    });
    expect(out).toEqual({
      driver: 'raw',
      size: 16,
      'l2-cache-size': 1048576,
      'read-only': true,
      'auto-read-only': false,
      'force-share': false,
      discard: 'ignore',
      cache: { direct: true, 'no-flush': false },
      'detect-zeroes': 'off',
      aio: 'threads',
      rules: [{ sector: 7 }],
    });
  });

  it('reads every boolean word the command line accepts', () => {
    for (const [word, value] of [
      ['on', true],
      ['yes', true],
      ['true', true],
      ['off', false],
      ['no', false],
      ['false', false],
    ]) {
      expect(check('cli', { driver: 'raw', 'read-only': word })['read-only']).toBe(value);
    }
  });

  it('takes JSON types as they are (qmp) and returns a new object', () => {
    const raw = { driver: 'raw', size: 512, 'read-only': true, cache: { 'no-flush': true } };
    const out = check('qmp', raw);
    expect(out).toMatchObject({ size: 512, 'read-only': true, cache: { direct: false, 'no-flush': true } });
    expect(out).not.toBe(raw);
    expect(raw).not.toHaveProperty('aio');
  });

  it('returns child options untouched: inline object, node-name, null where nullable', () => {
    const inline = { driver: 'file', filename: 'x', bogus: 1 };
    const out = check('qmp', { driver: 'raw', file: inline, backing: null });
    expect(out.file).toBe(inline);
    expect(out.backing).toBeNull();
    expect(check('cli', { driver: 'raw', file: 'node0' }).file).toBe('node0');
  });

  it('legacy accepts strings and JSON scalars alike (json: filenames mix them)', () => {
    expect(
      check('legacy', { driver: 'raw', size: 512, 'l2-cache-size': '1.5k', 'read-only': 'on' }),
    ).toMatchObject({
      size: 512,
      'l2-cache-size': 1536,
      'read-only': true,
    });
    expect(check('legacy', { driver: 'raw', size: '512', filename: 7, 'read-only': true })).toMatchObject({
      size: 512,
      filename: '7',
      'read-only': true,
    });
  });
});

// Every text below was captured from QEMU 7.2: QMP blockdev-add ('qmp'), -blockdev keyval
// ('cli'), and qemu-img --image-opts / -drive ('legacy').
describe('validateOptions: QMP blockdev-add errors', () => {
  it.each([
    [{ bogus: 1 }, '', "Parameter 'bogus' is unexpected"],
    [{ bogus: 1 }, 'file.', "Parameter 'file.bogus' is unexpected"],
    [{ cache: { bogus: true } }, '', "Parameter 'cache.bogus' is unexpected"],
    [{ size: '1k' }, '', "Invalid parameter type for 'size', expected: integer"],
    [{ size: 1.5 }, '', "Invalid parameter type for 'size', expected: integer"],
    [{ size: 'x' }, 'file.', "Invalid parameter type for 'file.size', expected: integer"],
    [{ 'l2-cache-size': '1k' }, '', "Invalid parameter type for 'l2-cache-size', expected: integer"],
    [{ 'l2-cache-size': -1 }, '', "Parameter 'l2-cache-size' expects a non-negative number below 2^64"],
    [{ 'read-only': 'on' }, '', "Invalid parameter type for 'read-only', expected: boolean"],
    [{ 'read-only': 1 }, 'file.', "Invalid parameter type for 'file.read-only', expected: boolean"],
    [{ cache: 1 }, '', "Invalid parameter type for 'cache', expected: object"],
    [{ cache: { direct: 'x' } }, '', "Invalid parameter type for 'cache.direct', expected: boolean"],
    [{ cache: { direct: 1 } }, 'file.', "Invalid parameter type for 'file.cache.direct', expected: boolean"],
    [{ discard: 'x' }, '', "Parameter 'discard' does not accept value 'x'"],
    [{ discard: 'x' }, 'file.', "Parameter 'discard' does not accept value 'x'"],
    [{ aio: 'x' }, 'file.', "Parameter 'aio' does not accept value 'x'"],
    [{ discard: 1 }, '', "Invalid parameter type for 'discard', expected: string"],
    [{ 'node-name': 1 }, '', "Invalid parameter type for 'node-name', expected: string"],
    [{ driver: 1 }, '', "Invalid parameter type for 'driver', expected: string"],
    [{ file: null }, '', "Invalid parameter type for 'file', expected: BlockdevRef"],
    [{ file: 1 }, '', "Invalid parameter type for 'file', expected: BlockdevRef"],
    [{ backing: 1 }, '', "Invalid parameter type for 'backing', expected: BlockdevRefOrNull"],
  ])('%j at %j → %s', (opts, path, message) => {
    expect(() => check('qmp', { driver: 'raw', ...opts }, path)).toThrow(message);
  });

  it('reports a missing required option with its full path', () => {
    const schema: OptionsSchema = {
      ...COMMON_NODE_OPTIONS,
      filename: { type: 'str', required: true, help: '' },
    };
    const ctx = { source: 'qmp' as const, path: 'file.', driverName: 'file' };
    expect(() => validateOptions(schema, { driver: 'file' }, ctx)).toThrow(
      "Parameter 'file.filename' is missing",
    );
    expect(() => validateOptions(schema, {}, { ...ctx, path: '' })).toThrow("Parameter 'driver' is missing");
  });

  it('checks known options before refusing unknown ones', () => {
    expect(() => check('qmp', { driver: 'raw', bogus: 1, size: 'x' })).toThrow("'size', expected: integer");
  });
});

describe('validateOptions: -blockdev keyval errors', () => {
  it.each([
    [{ bogus: '1' }, "Parameter 'bogus' is unexpected"],
    [{ cache: { direct: 'on', bogus: '1' } }, "Parameter 'cache.bogus' is unexpected"],
    [{ size: '1k' }, "Parameter 'size' expects integer"],
    [{ size: '1.5' }, "Parameter 'size' expects integer"],
    [{ size: '' }, "Parameter 'size' expects integer"],
    [{ size: '99999999999999999999' }, "Parameter 'size' expects integer"],
    // QAPI declares sizes as int: suffixes only work on the legacy paths.
    [{ 'l2-cache-size': '1M' }, "Parameter 'l2-cache-size' expects integer"],
    [{ 'l2-cache-size': '1.5k' }, "Parameter 'l2-cache-size' expects integer"],
    [{ 'l2-cache-size': '-1' }, "Parameter 'l2-cache-size' expects a non-negative number below 2^64"],
    [{ 'read-only': '1' }, "Parameter 'read-only' expects 'on' or 'off'"],
    [{ 'read-only': 'ON' }, "Parameter 'read-only' expects 'on' or 'off'"],
    [{ 'read-only': '' }, "Parameter 'read-only' expects 'on' or 'off'"],
    [{ discard: 'bogus' }, "Parameter 'discard' does not accept value 'bogus'"],
    [{ 'detect-zeroes': 'x' }, "Parameter 'detect-zeroes' does not accept value 'x'"],
    [{ cache: 'on' }, "Invalid parameter type for 'cache', expected: object"],
    [{ size: { x: '1' } }, "Parameters 'size.*' are unexpected"],
    [{ 'read-only': { x: '1' } }, "Parameters 'read-only.*' are unexpected"],
    [{ discard: { x: '1' } }, "Parameters 'discard.*' are unexpected"],
  ])('%j → %s', (opts, message) => {
    expect(() => check('cli', { driver: 'raw', ...opts })).toThrow(message);
  });

  it('names nested options by their full path, enum values by the member alone', () => {
    expect(() => check('cli', { driver: 'file', bogus: '1' }, 'file.')).toThrow(
      "Parameter 'file.bogus' is unexpected",
    );
    expect(() => check('cli', { driver: 'file', aio: 'x' }, 'file.')).toThrow(
      "Parameter 'aio' does not accept value 'x'",
    );
  });

  it('accepts what qemu_strtoi64 accepts', () => {
    expect(check('cli', { driver: 'raw', size: ' 5' }).size).toBe(5);
    expect(check('cli', { driver: 'raw', size: '-5' }).size).toBe(-5);
  });
});

describe('validateOptions: legacy (-drive, --image-opts, json:) errors', () => {
  it.each([
    ['raw', { bogus: '1' }, "Block format 'raw' does not support the option 'bogus'"],
    ['file', { bogus: '1' }, "Block protocol 'file' doesn't support the option 'bogus'"],
    ['null-co', { bogus: '1' }, "Block protocol 'null-co' doesn't support the option 'bogus'"],
    ['blkdebug', { bogus: '1' }, "Block protocol 'blkdebug' doesn't support the option 'bogus'"],
    [
      'null-co',
      { cache: { bogus: 'x' } },
      "Block protocol 'null-co' doesn't support the option 'cache.bogus'",
    ],
    ['null-co', { a: ['1'] }, "Block protocol 'null-co' doesn't support the option 'a.0'"],
    ['raw', { 'l2-cache-size': 'abc' }, "Parameter 'l2-cache-size' expects a non-negative number below 2^64"],
    ['raw', { 'l2-cache-size': '-1' }, "Parameter 'l2-cache-size' expects a non-negative number below 2^64"],
    ['raw', { size: 'abc' }, "Parameter 'size' expects a number"],
    ['raw', { 'read-only': 'x' }, "Parameter 'read-only' expects 'on' or 'off'"],
    ['raw', { cache: { direct: 'x' } }, "Parameter 'cache.direct' expects 'on' or 'off'"],
    ['raw', { discard: 'x' }, 'Invalid discard option'],
    ['raw', { 'detect-zeroes': 'x' }, 'invalid parameter value: x'],
    ['file', { aio: 'x' }, 'invalid parameter value: x'],
  ])('%s %j → %s', (driverName, opts, message) => {
    expect(() => check('legacy', { driver: driverName, ...opts }, 'file.', driverName)).toThrow(message);
  });

  it('names a missing child as QEMU does', () => {
    const schema: OptionsSchema = {
      ...COMMON_NODE_OPTIONS,
      file: { type: 'child', required: true, help: '' },
    };
    expect(() =>
      validateOptions(schema, { driver: 'raw' }, { source: 'legacy', path: '', driverName: 'raw' }),
    ).toThrow('A block device must be specified for "file"');
  });
});

describe('validateOptions: bounds', () => {
  it('refuses an int outside min..max, in every source', () => {
    expect(() => check('qmp', { driver: 'raw', align: 0 })).toThrow(
      "Parameter 'align' expects a value between 1 and 4096",
    );
    expect(() => check('cli', { driver: 'raw', align: '8192' })).toThrow(
      "'align' expects a value between 1 and 4096",
    );
    expect(check('cli', { driver: 'raw', align: '512' }).align).toBe(512);
  });
});
