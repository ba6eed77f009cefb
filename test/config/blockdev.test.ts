import { describe, expect, it } from 'vitest';
import { parseBlockdev } from '../../src/config/blockdev.ts';

describe('parseBlockdev', () => {
  it('keyval form: nested, strings, source cli', () => {
    expect(parseBlockdev('driver=qcow2,node-name=disk,file.driver=file,file.filename=x')).toEqual({
      options: { driver: 'qcow2', 'node-name': 'disk', file: { driver: 'file', filename: 'x' } },
      source: 'cli',
    });
  });

  it('keyval form implies driver (-blockdev null-co,node-name=a)', () => {
    expect(parseBlockdev('null-co,node-name=a').options).toEqual({ driver: 'null-co', 'node-name': 'a' });
    // Not JSON unless it starts with '{': QEMU then says Parameter 'driver' does not accept value '[1]'.
    expect(parseBlockdev('[1]').options).toEqual({ driver: '[1]' });
  });

  it('JSON form: typed, source qmp', () => {
    expect(parseBlockdev('{"driver":"null-co","node-name":"a","size":512,"read-only":true}')).toEqual({
      options: { driver: 'null-co', 'node-name': 'a', size: 512, 'read-only': true },
      source: 'qmp',
    });
    expect(() => parseBlockdev('{"driver":"null-co",')).toThrow(/^JSON parse error, /);
  });
});
