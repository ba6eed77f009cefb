import { describe, expect, it } from 'vitest';
import { flattenTree, parseKeyval, unflatten } from '../../src/config/keyval.ts';
import { parseQemuOpts } from '../../src/config/qemu-opts.ts';

describe('parseKeyval (util/keyval.c)', () => {
  it('parses key=value pairs; every value is a string', () => {
    expect(parseKeyval('driver=qcow2,node-name=disk,size=1024')).toEqual({
      driver: 'qcow2',
      'node-name': 'disk',
      size: '1024',
    });
  });

  it('turns ,, into a literal comma, in any value', () => {
    expect(parseKeyval('driver=file,filename=a,,b,,,,c,node-name=n')).toEqual({
      driver: 'file',
      filename: 'a,b,,c',
      'node-name': 'n',
    });
  });

  it('takes colons and other characters in values literally', () => {
    expect(parseKeyval('file.driver=file,file.filename=nbd:localhost:10809')).toEqual({
      file: { driver: 'file', filename: 'nbd:localhost:10809' },
    });
  });

  it('nests dotted keys', () => {
    expect(
      parseKeyval('driver=raw,file.driver=nbd,file.server.host=localhost,file.server.port=10809'),
    ).toEqual({
      driver: 'raw',
      file: { driver: 'nbd', server: { host: 'localhost', port: '10809' } },
    });
  });

  it('makes lists from numeric fragments, in any order', () => {
    expect(parseKeyval('a.1=y,a.0=x,b.0.event=read_aio,b.0.errno=5')).toEqual({
      a: ['x', 'y'],
      b: [{ event: 'read_aio', errno: '5' }],
    });
  });

  it('keeps the last value of a repeated key', () => {
    expect(parseKeyval('node-name=a,node-name=b')).toEqual({ 'node-name': 'b' });
  });

  it('accepts a trailing comma and an empty string', () => {
    expect(parseKeyval('a=1,')).toEqual({ a: '1' });
    expect(parseKeyval('')).toEqual({});
    expect(parseKeyval('a=')).toEqual({ a: '' });
  });

  it('desugars an implied first key', () => {
    expect(parseKeyval('ide-hd,drive=d0', { impliedKey: 'driver' })).toEqual({
      driver: 'ide-hd',
      drive: 'd0',
    });
    expect(parseKeyval('null-co,node-name=n', { impliedKey: 'driver' })).toEqual({
      driver: 'null-co',
      'node-name': 'n',
    });
    // Only the first pair may leave out the key; an explicit first key works as well.
    expect(() => parseKeyval('driver=x,y', { impliedKey: 'driver' })).toThrow(
      "Expected '=' after parameter 'y'",
    );
  });

  // Texts captured from qemu-system-x86_64 -blockdev (QEMU 7.2).
  it.each([
    ['driver=null-co,node-name', "Expected '=' after parameter 'node-name'"],
    ['driver=null-co,read-only', "Expected '=' after parameter 'read-only'"],
    ['driver=null-co,a.0=1,a.2=3', "Parameter 'a.1' missing"],
    ['driver=null-co,a=1,a.b=2', "Parameters 'a.*' used inconsistently"],
    ['driver=null-co,a.b=1,a=2', "Parameters 'a.*' used inconsistently"],
    ['driver=null-co,a.0=1,a.b=2', "Parameters 'a.*' used inconsistently"],
    ['x.a.b=1,x.a=2', "Parameters 'x.a.*' used inconsistently"],
    ['driver=null-co,1a=2', "Invalid parameter '1a'"],
    ['driver=null-co,a..b=1', "Invalid parameter 'a..b'"],
    ['driver=null-co,=1', "Invalid parameter ''"],
    ['a.1b=1', "Invalid parameter 'a.1b'"],
    [`${'k'.repeat(128)}=1`, `Parameter '${'k'.repeat(128)}' is too long`],
    [`a.${'k'.repeat(128)}=1`, `Parameter fragment '${'k'.repeat(128)}' is too long`],
    ['a.99999999999=1', "Parameter 'a.0' missing"],
  ])('%s → %s', (input, message) => {
    expect(() => parseKeyval(input)).toThrow(message);
  });

  it('after an escaped comma, the rest is still the same value', () => {
    // QEMU: driver=null-co,,node-name=a → Parameter 'driver' does not accept value 'null-co,node-name=a'
    expect(parseKeyval('driver=null-co,,node-name=a')).toEqual({ driver: 'null-co,node-name=a' });
  });
});

describe('unflatten / flattenTree (qdict_crumple / qdict_flatten)', () => {
  it('merges dotted keys with nested objects and keeps JSON types', () => {
    expect(
      unflatten({ driver: 'raw', 'file.driver': 'file', file: { filename: 'd.raw' }, size: 512 }),
    ).toEqual({
      driver: 'raw',
      size: 512,
      file: { driver: 'file', filename: 'd.raw' },
    });
  });

  it('makes lists and refuses a scalar used as an object', () => {
    expect(unflatten({ 'a.0': 1, 'a.1': true })).toEqual({ a: [1, true] });
    expect(() => unflatten({ a: 1, 'a.b': 2 })).toThrow("Parameters 'a.*' used inconsistently");
  });

  it('flattens back', () => {
    expect(flattenTree({ a: { b: 1, c: [true] }, d: null })).toEqual({ 'a.b': 1, 'a.c.0': true, d: null });
  });
});

describe('parseQemuOpts (-drive / -device syntax)', () => {
  it('keeps dotted keys flat and escapes commas in values', () => {
    expect(parseQemuOpts('file=a,,b,file.locking=off').options).toEqual({
      file: 'a,b',
      'file.locking': 'off',
    });
  });

  it('reads a bare key as a deprecated boolean flag, "no" prefix as off', () => {
    const { options, warnings } = parseQemuOpts('file=x,readonly,nosnapshot');
    expect(options).toEqual({ file: 'x', readonly: 'on', snapshot: 'off' });
    // As qemu-system-x86_64 -drive ...,readonly prints it.
    expect(warnings.slice(0, 2)).toEqual([
      "short-form boolean option 'readonly' deprecated",
      'Please use readonly=on instead',
    ]);
  });

  it('takes an implied first key, even an empty one', () => {
    expect(parseQemuOpts('ide-hd,drive=d0', 'driver').options).toEqual({ driver: 'ide-hd', drive: 'd0' });
    expect(parseQemuOpts(',drive=d0', 'driver').options).toEqual({ driver: '', drive: 'd0' });
  });

  it('refuses an id that is not an identifier', () => {
    expect(() => parseQemuOpts('id=1d')).toThrow("Parameter 'id' expects an identifier");
    expect(() => parseQemuOpts('id=')).toThrow("Parameter 'id' expects an identifier");
    expect(() => parseQemuOpts('id=a,,b')).toThrow("Parameter 'id' expects an identifier");
  });
});
