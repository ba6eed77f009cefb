import { afterEach, describe, expect, it } from 'vitest';
import { filenameToOptions, protocolOptions, setDefaultProtocol } from '../../src/config/filename.ts';

afterEach(() => setDefaultProtocol('file'));

describe('the default protocol of plain paths', () => {
  it('is file, as in QEMU', () => {
    expect(protocolOptions('dir/disk.img')).toEqual({ driver: 'file', filename: 'dir/disk.img' });
  });

  it('can be blob, where plain names are registered Blobs (the worker)', () => {
    setDefaultProtocol('blob');
    expect(protocolOptions('disk.qcow2')).toEqual({ driver: 'blob', name: 'disk.qcow2' });
    expect(filenameToOptions('./a:b', 'qcow2')).toEqual({
      driver: 'qcow2',
      file: { driver: 'blob', name: './a:b' },
    });
    // Names with a protocol prefix keep theirs.
    expect(protocolOptions('file:x.img')).toEqual({ driver: 'file', filename: 'x.img' });
    expect(protocolOptions('https://h/x.img')).toMatchObject({ driver: 'https' });
  });

  it('must be a protocol driver', () => {
    expect(() => setDefaultProtocol('qcow2')).toThrow("Unknown protocol driver 'qcow2'");
    expect(protocolOptions('a.img')).toEqual({ driver: 'file', filename: 'a.img' });
  });
});
