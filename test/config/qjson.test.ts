import { describe, expect, it } from 'vitest';
import { displayFilename } from '../../src/cli/image-name.ts';
import { jsonString, qobjectJson } from '../../src/config/qjson.ts';

describe("QEMU's JSON", () => {
  it('orders keys as a QDict and escapes like qobject_to_json', () => {
    // Strings captured from qemu-img info 7.2.
    expect(qobjectJson({ driver: 'null-co', size: '1M', 'read-zeroes': 'on' })).toBe(
      '{"read-zeroes": "on", "driver": "null-co", "size": "1M"}',
    );
    expect(qobjectJson({ filename: 'a', format: 'raw', 'actual-size': 1, 'virtual-size': 2 }, true)).toBe(
      '{\n    "virtual-size": 2,\n    "filename": "a",\n    "format": "raw",\n    "actual-size": 1\n}',
    );
    expect(jsonString('/tmp/é "x"\n')).toBe('"/tmp/\\u00E9 \\"x\\"\\n"');
  });

  it('names an image by its filename unless options change what it shows', () => {
    const file = { driver: 'file', filename: 'a.raw' };
    expect(displayFilename({ driver: 'raw', file, 'read-only': 'on', 'node-name': 'n0' })).toBe('a.raw');
    expect(displayFilename({ driver: 'raw', offset: '4096', size: '8192', file })).toBe(
      'json:{"offset": "4096", "driver": "raw", "size": "8192", "file": {"driver": "file", "filename": "a.raw"}}',
    );
  });
});
